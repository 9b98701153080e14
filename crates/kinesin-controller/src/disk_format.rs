//! How the controller's commands (the controller group's log entries) and snapshots are stored:
//! one format byte, then CBOR of the serde types. CBOR names every field and variant, so fields
//! and commands can be added without breaking a data directory written before them (new fields
//! need `#[serde(default)]`), and the format byte lets a later layout be told apart and refused,
//! never misread. Bincode, used before, had neither.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format this version writes. Readers accept every format up to it.
const FORMAT: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = vec![FORMAT];
    ciborium::into_writer(value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&format, body)) if (1..=FORMAT).contains(&format) => {
            ciborium::from_reader(body).map_err(|e| e.to_string())
        }
        Some((format, _)) => Err(format!(
            "format {format}; this version reads formats 1 to {FORMAT}"
        )),
        None => Err("empty".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Old {
        name: String,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct New {
        name: String,
        #[serde(default)]
        added: u64,
    }

    #[test]
    fn a_field_added_later_reads_what_was_written_before() {
        let bytes = encode(&Old { name: "s".into() }).unwrap();
        assert_eq!(
            decode::<New>(&bytes).unwrap(),
            New {
                name: "s".into(),
                added: 0
            }
        );
        let back = encode(&New {
            name: "t".into(),
            added: 3,
        })
        .unwrap();
        assert_eq!(decode::<Old>(&back).unwrap(), Old { name: "t".into() });
    }

    #[test]
    fn later_formats_and_empty_values_are_refused() {
        let mut bytes = encode(&Old { name: "s".into() }).unwrap();
        bytes[0] = FORMAT + 1;
        assert!(decode::<Old>(&bytes).unwrap_err().contains("format 2"));
        assert!(decode::<Old>(&[]).is_err());
    }
}
