//! Getting the stream ready before the load and out of the way after it: created when missing
//! (`--create`, the default), waited for until ACTIVE, deleted with `--delete-after`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::args::Args;
use crate::client::Transport;

pub struct StreamInfo {
    pub arn: Option<String>,
    pub open_shards: Option<u64>,
    pub created: bool,
}

/// Makes sure the stream exists and is ACTIVE (or UPDATING, which still takes writes).
pub async fn ensure_stream(control: &Transport, args: &Args) -> anyhow::Result<StreamInfo> {
    let describe = json!({ "StreamName": args.stream });
    let mut created = false;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match control.json("DescribeStreamSummary", &describe).await {
            Ok(answer) => {
                let summary = &answer["StreamDescriptionSummary"];
                let status = summary["StreamStatus"].as_str().unwrap_or("");
                if status == "ACTIVE" || status == "UPDATING" {
                    let open_shards = summary["OpenShardCount"].as_u64();
                    if !created {
                        if let Some(open) = open_shards {
                            if open != u64::from(args.shards) {
                                eprintln!(
                                    "note: stream {} exists with {open} open shards (--shards {} applies only when creating it)",
                                    args.stream, args.shards
                                );
                            }
                        }
                    }
                    return Ok(StreamInfo {
                        arn: summary["StreamARN"].as_str().map(str::to_string),
                        open_shards,
                        created,
                    });
                }
                anyhow::ensure!(
                    status != "DELETING" || created,
                    "stream {} is being deleted; try again in a moment or use another --stream",
                    args.stream
                );
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "stream {} still {status} after 180 s",
                    args.stream
                );
            }
            Err(error) if error.api_type() == Some("ResourceNotFoundException") && !created => {
                anyhow::ensure!(
                    args.create_stream(),
                    "stream {} does not exist (and --no-create was given)",
                    args.stream
                );
                let create = json!({ "StreamName": args.stream, "ShardCount": args.shards });
                match control.json("CreateStream", &create).await {
                    Ok(_) => {
                        eprintln!("created stream {} with {} shards", args.stream, args.shards)
                    }
                    Err(error) if error.api_type() == Some("ResourceInUseException") => {}
                    Err(error) => return Err(error.into()),
                }
                created = true;
            }
            Err(error) if error.api_type() == Some("ResourceNotFoundException") => {
                // Just created: not visible yet.
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "stream {} not found 180 s after creating it",
                    args.stream
                );
            }
            Err(error) => return Err(error.into()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn delete_stream(control: &Transport, stream: &str) -> anyhow::Result<()> {
    control
        .json(
            "DeleteStream",
            &json!({ "StreamName": stream, "EnforceConsumerDeletion": true }),
        )
        .await?;
    Ok(())
}
