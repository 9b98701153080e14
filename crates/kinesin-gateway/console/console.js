// Kinesin's web console: plain ES2020, no build step, no external assets.
//
// It talks only to the node it was loaded from: the Kinesis JSON 1.1 API (POST /), the admin API
// (/admin/v1/...) and /metrics. When signed in, every request is signed with AWS Signature
// Version 4 (service "kinesis") in the page, with crypto.subtle when the page has it and a small
// SHA-256/HMAC in JavaScript otherwise (crypto.subtle is missing on plain-HTTP origins other than
// localhost).
"use strict";

(() => {
  // ------------------------------------------------------------------------------------------
  // SHA-256 and HMAC-SHA256
  // ------------------------------------------------------------------------------------------

  const K256 = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  /** SHA-256 of a Uint8Array, in JavaScript. */
  function sha256js(msg) {
    const h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const bitLen = msg.length * 8;
    const padded = new Uint8Array(((msg.length + 9 + 63) >> 6) << 6);
    padded.set(msg);
    padded[msg.length] = 0x80;
    const dv = new DataView(padded.buffer);
    dv.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
    dv.setUint32(padded.length - 4, bitLen >>> 0);
    const w = new Uint32Array(64);
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + i * 4);
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15], b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const ch = (e & f) ^ (~e & g);
        const t1 = (hh + S1 + ch + K256[i] + w[i]) >>> 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const maj = (a & b) ^ (a & c) ^ (b & c);
        const t2 = (S0 + maj) >>> 0;
        hh = g; g = f; f = e; e = (d + t1) >>> 0;
        d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    const out = new Uint8Array(32);
    const odv = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) odv.setUint32(i * 4, h[i]);
    return out;
  }

  /** HMAC-SHA256 in JavaScript. */
  function hmacjs(key, msg) {
    if (key.length > 64) key = sha256js(key);
    const k = new Uint8Array(64);
    k.set(key);
    const inner = new Uint8Array(64 + msg.length);
    const outer = new Uint8Array(64 + 32);
    for (let i = 0; i < 64; i++) {
      inner[i] = k[i] ^ 0x36;
      outer[i] = k[i] ^ 0x5c;
    }
    inner.set(msg, 64);
    outer.set(sha256js(inner), 64);
    return sha256js(outer);
  }

  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  const forceJs = new URLSearchParams(location.search).has("jscrypto");
  const useSubtle = !!subtle && !forceJs;

  async function sha256(bytes) {
    if (useSubtle) return new Uint8Array(await subtle.digest("SHA-256", bytes));
    return sha256js(bytes);
  }

  async function hmac(key, msg) {
    if (useSubtle) {
      const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      return new Uint8Array(await subtle.sign("HMAC", k, msg));
    }
    return hmacjs(key, msg);
  }

  const utf8 = (s) => new TextEncoder().encode(s);
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

  // ------------------------------------------------------------------------------------------
  // Credentials (sessionStorage only) and SigV4
  // ------------------------------------------------------------------------------------------

  const CREDS_KEY = "kinesin-console-credentials";

  function credentials() {
    try {
      const c = JSON.parse(sessionStorage.getItem(CREDS_KEY) || "null");
      return c && c.accessKeyId && c.secretAccessKey ? c : null;
    } catch (_) {
      return null;
    }
  }

  function awsUriEncode(s, keepSlash) {
    return Array.from(utf8(s), (b) => {
      const c = String.fromCharCode(b);
      if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === "/")) return c;
      return "%" + b.toString(16).toUpperCase().padStart(2, "0");
    }).join("");
  }

  /** Adds x-amz-date and Authorization to `headers` (lower-case names) for this request. */
  async function signRequest(creds, method, path, query, headers, body) {
    const now = new Date();
    const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    const day = amzDate.slice(0, 8);
    const region = creds.region || "us-east-1";
    headers["x-amz-date"] = amzDate;
    const all = { ...headers, host: location.host };
    const names = Object.keys(all).map((n) => n.toLowerCase()).sort();
    const lower = {};
    for (const [n, v] of Object.entries(all)) lower[n.toLowerCase()] = String(v).trim().replace(/\s+/g, " ");
    const canonicalHeaders = names.map((n) => `${n}:${lower[n]}\n`).join("");
    const signedHeaders = names.join(";");
    const canonicalQuery = Object.entries(query || {})
      .map(([k, v]) => [awsUriEncode(k), awsUriEncode(String(v))])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join("&");
    // `path` is already URI-encoded; AWS (and botocore) encode it once more for services but S3.
    const canonicalPath = path.split("/").map((seg) => awsUriEncode(seg)).join("/");
    const payloadHash = hex(await sha256(utf8(body || "")));
    const canonical = [method, canonicalPath, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].join("\n");
    const scope = `${day}/${region}/kinesis/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(await sha256(utf8(canonical)))].join("\n");
    let key = await hmac(utf8("AWS4" + creds.secretAccessKey), utf8(day));
    key = await hmac(key, utf8(region));
    key = await hmac(key, utf8("kinesis"));
    key = await hmac(key, utf8("aws4_request"));
    const signature = hex(await hmac(key, utf8(toSign)));
    headers["authorization"] =
      `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  }

  // ------------------------------------------------------------------------------------------
  // The APIs
  // ------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(type, message, status) {
      super(message);
      this.type = type;
      this.status = status;
    }
  }

  async function send(method, path, query, headers, body) {
    const creds = credentials();
    if (creds) await signRequest(creds, method, path, query, headers, body);
    const qs = new URLSearchParams(query || {}).toString();
    let resp;
    try {
      resp = await fetch(path + (qs ? "?" + qs : ""), { method, headers, body: body || undefined, cache: "no-store" });
    } catch (e) {
      throw new ApiError("NetworkError", `cannot reach the node: ${e.message}`, 0);
    }
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : {};
    } catch (_) {
      json = null;
    }
    if (!resp.ok) {
      if (json && (json.__type || json.message || json.Message || json.error)) {
        const type = json.__type ? String(json.__type).split("#").pop() : `HTTP ${resp.status}`;
        throw new ApiError(type, json.message || json.Message || json.error || "", resp.status);
      }
      throw new ApiError(`HTTP ${resp.status}`, text.slice(0, 300), resp.status);
    }
    return json;
  }

  /** One Kinesis API call (JSON 1.1); throws ApiError with the response's __type and message. */
  function kinesis(op, params) {
    return send("POST", "/", null, {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": `Kinesis_20131202.${op}`,
    }, JSON.stringify(params || {}));
  }

  /** One admin API call. */
  function admin(method, path, query) {
    const creds = credentials();
    const q = { ...(query || {}) };
    return send(method, path, q, {}, "");
  }

  /** Kinesis calls retried on throttling, as the SDKs do. */
  async function kinesisRetrying(op, params, attempts = 8) {
    for (let i = 0; ; i++) {
      try {
        return await kinesis(op, params);
      } catch (e) {
        const throttled = e.type === "ProvisionedThroughputExceededException" || e.type === "LimitExceededException";
        if (!throttled || i >= attempts - 1) throw e;
        await sleep(Math.random() * Math.min(1000, 100 * 2 ** i));
      }
    }
  }

  async function listStreams() {
    const names = [];
    let params = { Limit: 100 };
    for (;;) {
      const out = await kinesis("ListStreams", params);
      names.push(...(out.StreamNames || []));
      if (!out.HasMoreStreams || !names.length) break;
      params = out.NextToken ? { NextToken: out.NextToken } : { Limit: 100, ExclusiveStartStreamName: names[names.length - 1] };
    }
    return names;
  }

  async function listShards(stream) {
    const shards = [];
    let params = { StreamName: stream };
    for (;;) {
      const out = await kinesisRetrying("ListShards", params);
      shards.push(...(out.Shards || []));
      if (!out.NextToken) break;
      params = { NextToken: out.NextToken };
    }
    return shards;
  }

  async function describe(stream) {
    return (await kinesis("DescribeStreamSummary", { StreamName: stream })).StreamDescriptionSummary;
  }

  // ------------------------------------------------------------------------------------------
  // DOM helpers
  // ------------------------------------------------------------------------------------------

  const SVGNS = "http://www.w3.org/2000/svg";

  function build(ns, tag, attrs, children) {
    const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else if (k === "value" && !ns) el.value = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const h = (tag, attrs, ...children) => build(null, tag, attrs, children);
  /** el.replaceChildren without the nulls (the DOM would show them as "null"). */
  const fill = (el, ...children) => el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  const s = (tag, attrs, ...children) => build(SVGNS, tag, attrs, children);
  const $ = (sel, root = document) => root.querySelector(sel);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const badge = (text) => h("span", { class: `badge ${text}` }, text);

  function showError(e, context) {
    const box = $("#error");
    fill(box, 
      h("button", { type: "button", class: "secondary", onclick: () => (box.hidden = true) }, "×"),
      context ? h("span", {}, `${context}: `) : null,
      h("span", { class: "type" }, e.type || e.name || "Error"),
      ": ",
      h("span", { class: "message" }, e.message || String(e)),
    );
    box.hidden = false;
    if (e.type === "MissingAuthenticationTokenException" && !credentials()) openSignIn();
  }
  const clearError = () => ($("#error").hidden = true);

  /** Runs an action, showing what it throws. */
  async function guarded(context, fn) {
    try {
      return await fn();
    } catch (e) {
      showError(e, context);
      return undefined;
    }
  }

  function fmtNum(n, digits = 1) {
    if (n === null || n === undefined || Number.isNaN(n)) return "–";
    const abs = Math.abs(n);
    if (abs >= 1e9) return (n / 1e9).toFixed(digits) + "G";
    if (abs >= 1e6) return (n / 1e6).toFixed(digits) + "M";
    if (abs >= 1e4) return (n / 1e3).toFixed(digits) + "k";
    return Number.isInteger(n) ? String(n) : n.toFixed(digits);
  }
  const fmtTime = (secs) => (secs ? new Date(secs * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "–");
  const shortId = (id) => String(Number(id.replace(/^shardId-/, "")));

  // ------------------------------------------------------------------------------------------
  // Views and routing
  // ------------------------------------------------------------------------------------------

  // Each view registers its timers here; they stop when another view is shown.
  let viewTimers = [];
  let viewGeneration = 0;

  function every(ms, fn) {
    const gen = viewGeneration;
    let running = false;
    const id = setInterval(async () => {
      if (running || gen !== viewGeneration) return;
      running = true;
      try {
        await fn();
      } finally {
        running = false;
      }
    }, ms);
    viewTimers.push(id);
  }

  function route() {
    viewTimers.forEach(clearInterval);
    viewTimers = [];
    viewGeneration++;
    clearError();
    const hash = location.hash || "#/streams";
    const parts = hash.slice(2).split("/").map(decodeURIComponent);
    document.querySelectorAll("header nav a").forEach((a) => a.classList.remove("active"));
    const view = $("#view");
    if (parts[0] === "stream" && parts[1]) {
      $("#nav-streams").classList.add("active");
      streamView(view, parts[1]);
    } else if (parts[0] === "cluster") {
      $("#nav-cluster").classList.add("active");
      clusterView(view);
    } else {
      $("#nav-streams").classList.add("active");
      streamsView(view);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Streams
  // ------------------------------------------------------------------------------------------

  function enhanced(summary) {
    const metrics = (summary.EnhancedMonitoring || []).flatMap((m) => m.ShardLevelMetrics || []);
    return metrics;
  }

  async function streamsView(view) {
    const gen = viewGeneration;
    const tbody = h("tbody", {}, h("tr", {}, h("td", { colspan: 10, class: "muted" }, "Loading…")));
    const activity = h("ul", { id: "activity" });
    const nameInput = h("input", { id: "create-name", placeholder: "stream name", required: true, pattern: "[a-zA-Z0-9_.\\-]+", spellcheck: "false" });
    const modeSelect = h("select", { id: "create-mode" }, h("option", { value: "PROVISIONED" }, "Provisioned"), h("option", { value: "ON_DEMAND" }, "On-demand"));
    const countInput = h("input", { id: "create-shards", type: "number", min: 1, value: 2, style: "width:80px" });
    modeSelect.addEventListener("change", () => (countInput.disabled = modeSelect.value === "ON_DEMAND"));
    const form = h("form", {
      class: "row",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const name = nameInput.value.trim();
        const params = { StreamName: name, StreamModeDetails: { StreamMode: modeSelect.value } };
        if (modeSelect.value === "PROVISIONED") params.ShardCount = Number(countInput.value);
        await track(activity, `Create ${name}`, () => kinesis("CreateStream", params), name, () => gen === viewGeneration && refresh());
        nameInput.value = "";
      },
    },
    h("label", {}, "Name", nameInput), h("label", {}, "Capacity mode", modeSelect), h("label", {}, "Shards", countInput),
    h("button", { id: "create-btn", type: "submit" }, "Create stream"));

    fill(view, 
      h("h1", {}, "Streams"),
      h("div", { class: "card" },
        h("table", { id: "streams" },
          h("thead", {}, h("tr", {},
            ["Name", "Status", "Mode", "Open shards", "Retention", "Encryption", "Enhanced monitoring", "Consumers", "Created", ""]
              .map((t, i) => h("th", { class: [3, 4, 7].includes(i) ? "num" : "" }, t)))),
          tbody)),
      h("div", { class: "card" }, h("h2", {}, "Create a stream"), form, activity),
    );

    async function refresh() {
      const names = await guarded("ListStreams", listStreams);
      if (gen !== viewGeneration) return;
      if (!names) {
        fill(tbody, h("tr", {}, h("td", { colspan: 10, class: "muted" }, "Could not list the streams (see the error above).")));
        return;
      }
      const summaries = await Promise.all(names.map((n) => describe(n).catch((e) => ({ StreamName: n, error: e }))));
      if (gen !== viewGeneration) return;
      if (!summaries.length) {
        fill(tbody, h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No streams yet.")));
        return;
      }
      fill(tbody, ...summaries.map((d) => streamRow(d, activity, refresh)));
    }
    await refresh();
    every(5000, refresh);
  }

  function streamRow(d, activity, refresh) {
    const name = d.StreamName;
    if (d.error) {
      return h("tr", { "data-stream": name }, h("td", {}, name), h("td", { colspan: 9, class: "muted" }, `${d.error.type}: ${d.error.message}`));
    }
    const metrics = enhanced(d);
    const del = h("button", { type: "button", class: "danger delete-btn" }, "Delete");
    const cell = h("td", {}, del);
    del.addEventListener("click", () => {
      fill(cell, 
        h("span", { class: "muted" }, "Delete? "),
        h("button", {
          type: "button", class: "danger confirm-delete",
          onclick: () => track(activity, `Delete ${name}`, () => kinesis("DeleteStream", { StreamName: name, EnforceConsumerDeletion: true }), null, refresh).then(refresh),
        }, "Yes"),
        " ",
        h("button", { type: "button", class: "secondary", onclick: refresh }, "No"),
      );
    });
    return h("tr", { "data-stream": name },
      h("td", {}, h("a", { class: "stream-link", href: `#/stream/${encodeURIComponent(name)}` }, name)),
      h("td", {}, badge(d.StreamStatus)),
      h("td", {}, (d.StreamModeDetails || {}).StreamMode || "PROVISIONED"),
      h("td", { class: "num" }, d.OpenShardCount),
      h("td", { class: "num" }, `${d.RetentionPeriodHours} h`),
      h("td", {}, d.EncryptionType === "KMS" ? `KMS (${d.KeyId})` : d.EncryptionType || "NONE"),
      h("td", {}, metrics.length ? metrics.join(", ") : "off"),
      h("td", { class: "num" }, d.ConsumerCount ?? 0),
      h("td", {}, fmtTime(d.StreamCreationTimestamp)),
      cell);
  }

  /**
   * Runs an action and shows its progress in `list`: the call, then (for a stream) the stream's
   * status polled until it is ACTIVE again (or gone, after a delete).
   */
  async function track(list, label, call, stream, done) {
    const started = performance.now();
    const li = h("li", { class: "running" }, `${label}: requested…`);
    list.prepend(li);
    const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    try {
      await call();
      if (stream) {
        for (let i = 0; ; i++) {
          let status;
          try {
            status = (await describe(stream)).StreamStatus;
          } catch (e) {
            if (e.type === "ResourceNotFoundException") status = "DELETED";
            else throw e;
          }
          li.textContent = `${label}: ${status} (${elapsed()})`;
          if (status === "ACTIVE" || status === "DELETED") break;
          if (performance.now() - started > 600000) throw new ApiError("Timeout", "still not ACTIVE after 10 minutes", 0);
          await sleep(500);
        }
      }
      li.className = "done";
      li.textContent = `${label}: done in ${elapsed()}`;
    } catch (e) {
      li.className = "failed";
      li.textContent = `${label}: ${e.type}: ${e.message}`;
      showError(e, label);
    }
    if (done) await done();
  }

  // ------------------------------------------------------------------------------------------
  // One stream
  // ------------------------------------------------------------------------------------------

  const TWO128 = 2n ** 128n;
  const PALETTE = ["#60a5fa", "#34d399", "#fbbf24", "#f472b6", "#a78bfa", "#f87171", "#2dd4bf", "#fb923c", "#93c5fd", "#86efac"];
  const frac = (big) => Number((BigInt(big) * 1000000n) / TWO128) / 1000000;
  const isOpen = (shard) => !(shard.SequenceNumberRange && shard.SequenceNumberRange.EndingSequenceNumber);
  const shardColor = (id) => PALETTE[Number(shortId(id)) % PALETTE.length];

  async function streamView(view, name) {
    const gen = viewGeneration;
    const state = { selected: null };
    const activity = h("ul", { id: "activity" });
    const header = h("div", {}, h("h1", {}, `Stream ${name}`), h("p", { class: "muted" }, "Loading…"));
    const mapCard = h("div", { class: "card", id: "shard-map" });
    const actionsCard = h("div", { class: "card", id: "actions" });
    const placementCard = h("div", { class: "card", id: "placement" });
    const chartsCard = h("div", { class: "card", id: "metrics" });
    const browserCard = h("div", { class: "card", id: "record-browser" });
    fill(view, 
      h("p", {}, h("a", { href: "#/streams" }, "← Streams")),
      header, mapCard, actionsCard, placementCard, chartsCard, browserCard);

    let shards = [];
    let summary = null;

    async function refresh() {
      const [d, list, placement, cluster] = await Promise.all([
        guarded("DescribeStreamSummary", () => describe(name)),
        guarded("ListShards", () => listShards(name)),
        admin("GET", `/admin/v1/streams/${encodeURIComponent(name)}/shards`, regionQuery()).catch((e) => ({ error: e })),
        admin("GET", "/admin/v1/cluster").catch((e) => ({ error: e })),
      ]);
      if (gen !== viewGeneration || !d || !list) return;
      summary = d;
      shards = list;
      fill(header, h("h1", {}, `Stream ${name} `, badge(d.StreamStatus)), settingsList(d));
      drawShardMap(mapCard, shards, state, () => renderActions());
      drawPlacement(placementCard, placement, cluster, shards);
      renderActions();
      recordBrowserShards(shards);
    }

    function renderActions() {
      drawActions(actionsCard, name, summary, shards, state, activity, refresh);
    }

    drawCharts(chartsCard, name);
    recordBrowser(browserCard, name);
    const recordBrowserShards = (list) => {
      const sel = $("#rb-shard", browserCard);
      const current = sel.value;
      fill(sel, ...list.map((sh) => h("option", { value: sh.ShardId }, `${sh.ShardId}${isOpen(sh) ? "" : " (closed)"}`)));
      if (current && list.some((sh) => sh.ShardId === current)) sel.value = current;
    };
    await refresh();
    every(10000, refresh);
  }

  function regionQuery() {
    const c = credentials();
    return c ? { region: c.region || "us-east-1" } : {};
  }

  function settingsList(d) {
    const metrics = enhanced(d);
    const item = (k, v) => h("div", {}, h("dt", {}, k), h("dd", {}, v));
    return h("dl", { class: "settings card" },
      h("div", { class: "wide" }, h("dt", {}, "ARN"), h("dd", { class: "mono" }, d.StreamARN)),
      item("Status", d.StreamStatus),
      item("Capacity mode", (d.StreamModeDetails || {}).StreamMode || "PROVISIONED"),
      item("Open shards", d.OpenShardCount),
      item("Retention", `${d.RetentionPeriodHours} hours`),
      item("Encryption", d.EncryptionType === "KMS" ? `KMS (${d.KeyId})` : d.EncryptionType || "NONE"),
      item("Enhanced monitoring", metrics.length ? metrics.join(", ") : "off"),
      item("Consumers", d.ConsumerCount ?? 0),
      item("Created", fmtTime(d.StreamCreationTimestamp)));
  }

  /** The open shards' hash ranges as a bar over [0, 2^128), and the lineage of every shard. */
  function drawShardMap(card, shards, state, onSelect) {
    const W = 1000, barH = 38, rowH = 30, gap = 14;
    const open = shards.filter(isOpen).sort((a, b) => (BigInt(a.HashKeyRange.StartingHashKey) < BigInt(b.HashKeyRange.StartingHashKey) ? -1 : 1));
    const x0 = (sh) => frac(sh.HashKeyRange.StartingHashKey) * W;
    const x1 = (sh) => frac(BigInt(sh.HashKeyRange.EndingHashKey) + 1n) * W;
    const select = (id) => {
      state.selected = id;
      card.querySelectorAll("rect.shard").forEach((r) => r.classList.toggle("selected", r.dataset.shardId === id));
      onSelect(id);
    };
    const label = (sh, cx, cy, width) => width > 22 ? s("text", { class: "shard-label", x: cx, y: cy, "text-anchor": "middle", "dominant-baseline": "middle" }, width > 150 ? sh.ShardId : shortId(sh.ShardId)) : null;
    const tip = (sh) => `${sh.ShardId} (${isOpen(sh) ? "open" : "closed"})\nhash keys ${sh.HashKeyRange.StartingHashKey} – ${sh.HashKeyRange.EndingHashKey}` +
      (sh.ParentShardId ? `\nparent ${sh.ParentShardId}` : "") + (sh.AdjacentParentShardId ? `\nadjacent parent ${sh.AdjacentParentShardId}` : "");

    const bar = s("svg", { id: "shard-bar", viewBox: `0 0 ${W} ${barH + 16}`, width: "100%", role: "img", "aria-label": "open shards' hash key ranges" },
      open.map((sh) => s("g", { "data-shard-id": sh.ShardId, class: "bar-shard" },
        s("title", {}, tip(sh)),
        s("rect", {
          class: `shard${state.selected === sh.ShardId ? " selected" : ""}`, "data-shard-id": sh.ShardId,
          x: x0(sh), y: 1, width: Math.max(1, x1(sh) - x0(sh)), height: barH - 2, fill: shardColor(sh.ShardId),
          onclick: () => select(sh.ShardId),
        }),
        label(sh, (x0(sh) + x1(sh)) / 2, barH / 2, x1(sh) - x0(sh)))),
      s("text", { class: "axis", x: 0, y: barH + 12 }, "0"),
      s("text", { class: "axis", x: W / 2, y: barH + 12, "text-anchor": "middle" }, "2^127"),
      s("text", { class: "axis", x: W, y: barH + 12, "text-anchor": "end" }, "2^128"));

    // Lineage: one row per generation (a shard is one below its deepest parent), x by hash range.
    const byId = new Map(shards.map((sh) => [sh.ShardId, sh]));
    const depth = new Map();
    const depthOf = (sh) => {
      if (depth.has(sh.ShardId)) return depth.get(sh.ShardId);
      depth.set(sh.ShardId, 0);
      const parents = [sh.ParentShardId, sh.AdjacentParentShardId].filter((p) => p && byId.has(p));
      const d = parents.length ? Math.max(...parents.map((p) => depthOf(byId.get(p)))) + 1 : 0;
      depth.set(sh.ShardId, d);
      return d;
    };
    shards.forEach(depthOf);
    const rows = shards.length ? Math.max(...depth.values()) + 1 : 0;
    const y = (sh) => depth.get(sh.ShardId) * (rowH + gap);
    const edges = [];
    for (const child of shards) {
      for (const pid of [child.ParentShardId, child.AdjacentParentShardId]) {
        const parent = pid && byId.get(pid);
        if (!parent) continue;
        const lo = Math.max(x0(parent), x0(child)), hi = Math.min(x1(parent), x1(child));
        const x = hi > lo ? (lo + hi) / 2 : (x0(parent) + x1(parent)) / 2;
        edges.push(s("line", { class: "edge", x1: x, y1: y(parent) + rowH, x2: x, y2: y(child), "data-from": pid, "data-to": child.ShardId }));
      }
    }
    const tree = s("svg", { id: "lineage", viewBox: `0 0 ${W} ${Math.max(1, rows * (rowH + gap) - gap + 2)}`, width: "100%", role: "img", "aria-label": "shard lineage" },
      edges,
      shards.map((sh) => s("g", { "data-shard-id": sh.ShardId, class: `tree-shard ${isOpen(sh) ? "open" : "closed"}` },
        s("title", {}, tip(sh)),
        s("rect", {
          class: `shard${isOpen(sh) ? "" : " closed"}${state.selected === sh.ShardId ? " selected" : ""}`, "data-shard-id": sh.ShardId,
          x: x0(sh) + 1, y: y(sh) + 1, width: Math.max(1, x1(sh) - x0(sh) - 2), height: rowH - 2, rx: 3,
          fill: isOpen(sh) ? shardColor(sh.ShardId) : null,
          onclick: () => isOpen(sh) && select(sh.ShardId),
        }),
        label(sh, (x0(sh) + x1(sh)) / 2, y(sh) + rowH / 2, x1(sh) - x0(sh)))));

    fill(card, 
      h("h2", {}, "Shard map"),
      h("h3", {}, `Open shards over the hash key space (${open.length})`),
      bar,
      h("h3", {}, "Lineage: splits and merges, oldest on top"),
      tree,
      h("p", { class: "legend" },
        h("span", {}, h("i", { class: "swatch", style: "background:#60a5fa" }), "open"),
        h("span", {}, h("i", { class: "swatch", style: "background:#c7cbd1" }), "closed"),
        h("span", {}, "lines join parents to children; click an open shard to pick it for a split")));
  }

  /** Which nodes hold each shard's replicas, and which leads it. */
  function drawPlacement(card, placement, cluster, shards) {
    fill(card, h("h2", {}, "Replicas and leaders"));
    if (placement.error) {
      card.append(h("p", { class: "muted" }, `Admin API: ${placement.error.type}: ${placement.error.message}`));
      return;
    }
    const nodes = new Set((cluster.nodes || []).map((n) => n.id));
    for (const sh of placement.shards) sh.replicas.forEach((r) => nodes.add(r));
    const nodeIds = [...nodes].sort((a, b) => a - b);
    const here = cluster.node_id;
    const rows = placement.shards.filter((sh) => sh.state === "OPEN").concat(placement.shards.filter((sh) => sh.state !== "OPEN"));
    card.append(
      h("table", { class: "placement" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Shard"), h("th", {}, "State"), h("th", {}, "Raft group"), h("th", { class: "num" }, "Term"),
          nodeIds.map((n) => h("th", { class: "cell" }, `node ${n}`)))),
        h("tbody", {}, rows.map((sh) => h("tr", { "data-shard-id": sh.shard_id },
          h("td", { class: "mono" }, sh.shard_id), h("td", {}, badge(sh.state)), h("td", { class: "num" }, sh.group),
          h("td", { class: "num" }, sh.term ?? "–"),
          nodeIds.map((n) => h("td", { class: "cell", "data-node": n },
            sh.leader === n ? h("span", { class: "leader", title: "leader" }, "L")
              : sh.replicas.includes(n) ? h("span", { class: "replica", title: "replica" }, "●") : "")))))),
      h("p", { class: "legend" }, h("span", {}, h("span", { class: "leader" }, "L"), " leader"), h("span", {}, "● replica"),
        h("span", {}, `leaders are known where node ${here ?? "?"} (this one) holds a replica`)));
  }

  function drawActions(card, name, summary, shards, state, activity, refresh) {
    const open = shards.filter(isOpen).sort((a, b) => (BigInt(a.HashKeyRange.StartingHashKey) < BigInt(b.HashKeyRange.StartingHashKey) ? -1 : 1));
    const act = (label, call) => track(activity, label, call, name, refresh);

    // Split: the chosen shard at the middle of its range by default.
    const splitSel = h("select", { id: "split-shard" }, open.map((sh) => h("option", { value: sh.ShardId }, sh.ShardId)));
    if (state.selected && open.some((sh) => sh.ShardId === state.selected)) splitSel.value = state.selected;
    const keyInput = h("input", { id: "split-key", class: "mono", style: "width:320px", spellcheck: "false" });
    const middle = () => {
      const sh = open.find((x) => x.ShardId === splitSel.value);
      if (!sh) return "";
      const a = BigInt(sh.HashKeyRange.StartingHashKey), b = BigInt(sh.HashKeyRange.EndingHashKey);
      return String(a + (b - a + 1n) / 2n);
    };
    keyInput.value = middle();
    splitSel.addEventListener("change", () => {
      state.selected = splitSel.value;
      keyInput.value = middle();
      document.querySelectorAll("#shard-map rect.shard").forEach((r) => r.classList.toggle("selected", r.dataset.shardId === splitSel.value));
    });
    const splitBtn = h("button", {
      id: "split-btn", type: "button",
      onclick: () => act(`Split ${splitSel.value}`, () => kinesis("SplitShard", { StreamName: name, ShardToSplit: splitSel.value, NewStartingHashKey: keyInput.value.trim() })),
    }, "Split");

    // Merge: two adjacent open shards.
    const pairs = [];
    for (let i = 0; i + 1 < open.length; i++) {
      if (BigInt(open[i].HashKeyRange.EndingHashKey) + 1n === BigInt(open[i + 1].HashKeyRange.StartingHashKey)) pairs.push([open[i], open[i + 1]]);
    }
    const mergeSel = h("select", { id: "merge-pair" }, pairs.map(([a, b]) => h("option", { value: `${a.ShardId} ${b.ShardId}` }, `${a.ShardId} + ${b.ShardId}`)));
    const mergeBtn = h("button", {
      id: "merge-btn", type: "button", disabled: !pairs.length,
      onclick: () => {
        const [a, b] = mergeSel.value.split(" ");
        return act(`Merge ${a} + ${b}`, () => kinesis("MergeShards", { StreamName: name, ShardToMerge: a, AdjacentShardToMerge: b }));
      },
    }, "Merge");

    const countInput = h("input", { id: "shard-count", type: "number", min: 1, value: open.length, style: "width:80px" });
    const countBtn = h("button", {
      id: "shard-count-btn", type: "button",
      onclick: () => act(`UpdateShardCount to ${countInput.value}`, () => kinesis("UpdateShardCount", { StreamName: name, TargetShardCount: Number(countInput.value), ScalingType: "UNIFORM_SCALING" })),
    }, "Update shard count");

    const current = summary ? summary.RetentionPeriodHours : 24;
    const retInput = h("input", { id: "retention", type: "number", min: 24, max: 8760, value: current, style: "width:90px" });
    const retBtn = h("button", {
      id: "retention-btn", type: "button",
      onclick: () => {
        const hours = Number(retInput.value);
        const op = hours >= current ? "IncreaseStreamRetentionPeriod" : "DecreaseStreamRetentionPeriod";
        return act(`${op} to ${hours} h`, () => kinesis(op, { StreamName: name, RetentionPeriodHours: hours }));
      },
    }, "Set retention");

    const monitored = summary ? enhanced(summary).length > 0 : false;
    const monBtn = h("button", {
      id: "monitoring-btn", type: "button", class: "secondary",
      onclick: () => act(monitored ? "Disable enhanced monitoring" : "Enable enhanced monitoring",
        () => kinesis(monitored ? "DisableEnhancedMonitoring" : "EnableEnhancedMonitoring", { StreamName: name, ShardLevelMetrics: ["ALL"] })),
    }, monitored ? "Turn enhanced monitoring off" : "Turn enhanced monitoring on");

    const provisioned = !summary || ((summary.StreamModeDetails || {}).StreamMode || "PROVISIONED") === "PROVISIONED";
    fill(card, 
      h("h2", {}, "Actions"),
      provisioned ? null : h("p", { class: "hint" }, "An on-demand stream reshards itself; splits and merges are for provisioned streams."),
      h("div", { class: "row" }, h("label", {}, "Split shard", splitSel), h("label", {}, "at hash key (default: the middle)", keyInput), splitBtn),
      h("div", { class: "row" }, h("label", {}, "Merge adjacent shards", mergeSel), mergeBtn),
      h("div", { class: "row" },
        h("label", {}, "Target shard count (uniform scaling)", countInput), countBtn,
        h("label", {}, "Retention (hours)", retInput), retBtn,
        monBtn),
      h("h3", {}, "Progress"),
      activity);
  }

  // ------------------------------------------------------------------------------------------
  // Live metrics from /metrics
  // ------------------------------------------------------------------------------------------

  /** Parses Prometheus text: [{name, labels, value}]. */
  function parseMetrics(text) {
    const out = [];
    const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const m = re.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[2]) for (const l of m[2].matchAll(labelRe)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
  }

  const SERIES = [
    { title: "Incoming records/s", metrics: ["kinesis_IncomingRecords_total"], rate: true },
    { title: "Incoming bytes/s", metrics: ["kinesis_IncomingBytes_total"], rate: true, bytes: true },
    { title: "GetRecords records/s", metrics: ["kinesis_GetRecords_Records_total"], rate: true },
    { title: "Throttled/s (write + read)", metrics: ["kinesis_WriteProvisionedThroughputExceeded_total", "kinesis_ReadProvisionedThroughputExceeded_total"], rate: true },
    { title: "Iterator age (ms, max)", metrics: ["kinesis_GetRecords_IteratorAgeMilliseconds"], rate: false },
  ];
  const POINTS = 60;
  const SCRAPE_MS = 3000;

  function drawCharts(card, stream) {
    const region = (credentials() || {}).region;
    const charts = SERIES.map((def, i) => {
      const svg = s("svg", { viewBox: "0 0 300 80", width: "100%", height: 80, preserveAspectRatio: "none" });
      const value = h("b", {}, "–");
      const el = h("div", { class: "chart", "data-series": i }, h("div", { class: "title" }, h("span", {}, def.title), value), svg);
      return { def, svg, value, el, points: [] };
    });
    const status = h("p", { class: "hint" }, `Rates from this node's /metrics every ${SCRAPE_MS / 1000} s (each node counts what it served).`);
    fill(card, h("h2", {}, "Live metrics"), status, h("div", { class: "charts" }, charts.map((c) => c.el)));

    let last = null;
    async function scrape() {
      let text;
      try {
        const resp = await fetch("/metrics", { cache: "no-store" });
        text = await resp.text();
      } catch (e) {
        status.textContent = `/metrics: ${e.message}`;
        return;
      }
      const now = performance.now();
      const samples = parseMetrics(text).filter((m) => m.labels.stream === stream && (!region || !m.labels.region || m.labels.region === region));
      const values = SERIES.map((def) => {
        const vals = samples.filter((m) => def.metrics.includes(m.name)).map((m) => m.value);
        if (!vals.length) return 0;
        return def.rate ? vals.reduce((a, b) => a + b, 0) : Math.max(...vals);
      });
      if (last) {
        const dt = (now - last.t) / 1000;
        charts.forEach((c, i) => {
          const v = c.def.rate ? Math.max(0, (values[i] - last.values[i]) / dt) : values[i];
          c.points.push(v);
          if (c.points.length > POINTS) c.points.shift();
          c.value.textContent = c.def.bytes ? `${fmtNum(v)} B/s` : fmtNum(v);
          plot(c);
        });
      }
      last = { t: now, values };
    }
    scrape();
    every(SCRAPE_MS, scrape);
  }

  function plot(c) {
    const max = Math.max(1, ...c.points);
    const xs = (i) => (300 * (POINTS - c.points.length + i)) / (POINTS - 1);
    const ys = (v) => 76 - (v / max) * 70;
    const pts = c.points.map((v, i) => `${xs(i).toFixed(1)},${ys(v).toFixed(1)}`).join(" ");
    fill(c.svg, 
      s("line", { x1: 0, y1: 76, x2: 300, y2: 76, stroke: "#e5e7eb" }),
      s("text", { class: "axis", x: 2, y: 10 }, fmtNum(max)),
      c.points.length > 1 ? s("polygon", { class: "area", points: `${xs(0)},76 ${pts} ${xs(c.points.length - 1)},76` }) : null,
      s("polyline", { points: pts }));
  }

  // ------------------------------------------------------------------------------------------
  // Record browser
  // ------------------------------------------------------------------------------------------

  function base64Bytes(b64) {
    const bin = atob(b64 || "");
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function decode(bytes, how) {
    if (how === "hex") {
      const lines = [];
      for (let off = 0; off < bytes.length; off += 16) {
        const chunk = bytes.slice(off, off + 16);
        const ascii = Array.from(chunk, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
        lines.push(`${off.toString(16).padStart(8, "0")}  ${Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(47)}  ${ascii}`);
      }
      return lines.join("\n");
    }
    const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    if (how === "json") {
      try {
        return JSON.stringify(JSON.parse(text), null, 2);
      } catch (_) {
        return `(not JSON) ${text}`;
      }
    }
    return text;
  }

  function recordBrowser(card, stream) {
    const shardSel = h("select", { id: "rb-shard" });
    const typeSel = h("select", { id: "rb-type" }, ["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP"].map((t) => h("option", { value: t }, t)));
    const seqInput = h("input", { id: "rb-seq", class: "mono", placeholder: "sequence number", style: "width:300px", spellcheck: "false" });
    const tsInput = h("input", { id: "rb-ts", type: "datetime-local", step: 1 });
    const seqLabel = h("label", {}, "Sequence number", seqInput);
    const tsLabel = h("label", {}, "Timestamp (local time)", tsInput);
    const limitInput = h("input", { id: "rb-limit", type: "number", min: 1, max: 10000, value: 25, style: "width:80px" });
    const decodeSel = h("select", { id: "rb-decode" }, h("option", { value: "utf8" }, "UTF-8"), h("option", { value: "json" }, "JSON (pretty)"), h("option", { value: "hex" }, "hex"));
    const info = h("p", { class: "hint", id: "rb-info" });
    const tbody = h("tbody", { id: "rb-records" });
    const readBtn = h("button", { id: "rb-read", type: "button" }, "Get records");
    const nextBtn = h("button", { id: "rb-next", type: "button", class: "secondary", disabled: true }, "Next");
    let next = null;
    let shown = [];

    const showInputs = () => {
      seqLabel.hidden = !typeSel.value.includes("SEQUENCE");
      tsLabel.hidden = typeSel.value !== "AT_TIMESTAMP";
    };
    typeSel.addEventListener("change", showInputs);
    showInputs();
    decodeSel.addEventListener("change", () => renderRows());

    function renderRows() {
      fill(tbody, ...shown.map((r) => h("tr", { "data-seq": r.SequenceNumber },
        h("td", { class: "mono" }, r.SequenceNumber),
        h("td", { class: "mono" }, r.PartitionKey),
        h("td", {}, fmtTime(r.ApproximateArrivalTimestamp)),
        h("td", { class: "num" }, base64Bytes(r.Data).length),
        h("td", { class: "data" }, h("pre", { class: "rec-data" }, decode(base64Bytes(r.Data), decodeSel.value))))));
      if (!shown.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No records.")));
    }

    /** GetRecords from an iterator, following empty pages while the shard has more behind. */
    async function read(iterator) {
      const limit = Number(limitInput.value) || 25;
      let out = null;
      for (let i = 0; i < 10 && iterator; i++) {
        out = await kinesisRetrying("GetRecords", { ShardIterator: iterator, Limit: limit });
        iterator = out.NextShardIterator;
        if ((out.Records || []).length || !out.MillisBehindLatest) break;
      }
      next = out ? out.NextShardIterator : null;
      shown = out ? out.Records || [] : [];
      nextBtn.disabled = !next;
      info.textContent = out
        ? `${shown.length} record(s); ${out.MillisBehindLatest ?? 0} ms behind the shard's tip${next ? "" : "; the shard is closed and fully read"}.`
        : "";
      renderRows();
    }

    readBtn.addEventListener("click", () => guarded("GetRecords", async () => {
      const params = { StreamName: stream, ShardId: shardSel.value, ShardIteratorType: typeSel.value };
      if (typeSel.value.includes("SEQUENCE")) params.StartingSequenceNumber = seqInput.value.trim();
      if (typeSel.value === "AT_TIMESTAMP") params.Timestamp = tsInput.value ? new Date(tsInput.value).getTime() / 1000 : Date.now() / 1000;
      info.textContent = "Reading…";
      const it = await kinesisRetrying("GetShardIterator", params);
      await read(it.ShardIterator);
    }));
    nextBtn.addEventListener("click", () => guarded("GetRecords", () => read(next)));

    fill(card, 
      h("h2", {}, "Records"),
      h("div", { class: "row" }, h("label", {}, "Shard", shardSel), h("label", {}, "Iterator type", typeSel), seqLabel, tsLabel,
        h("label", {}, "Limit", limitInput), h("label", {}, "Show data as", decodeSel), readBtn, nextBtn),
      info,
      h("table", { class: "records" },
        h("thead", {}, h("tr", {}, h("th", {}, "Sequence number"), h("th", {}, "Partition key"), h("th", {}, "Arrived"), h("th", { class: "num" }, "Bytes"), h("th", {}, "Data"))),
        tbody));
  }

  // ------------------------------------------------------------------------------------------
  // Cluster
  // ------------------------------------------------------------------------------------------

  // Drains started from this page: node id -> replicas it held when the drain began.
  const drains = new Map();

  async function clusterView(view) {
    const gen = viewGeneration;
    const summary = h("p", { class: "muted" }, "Loading…");
    const tbody = h("tbody", {});
    fill(view, 
      h("h1", {}, "Cluster"),
      h("div", { class: "card" }, summary,
        h("table", { id: "nodes" },
          h("thead", {}, h("tr", {}, ["Node", "Cluster address", "State", "Controller", "Last heartbeat", "Replicas", "Moving off", "Draining", ""].map((t) => h("th", {}, t)))),
          tbody)),
      h("p", { class: "hint" }, "Draining a node moves every replica it holds to other nodes, a few at a time; the node stays a member until it is removed (kinesin ctl node remove)."));

    async function refresh() {
      let c;
      try {
        c = await admin("GET", "/admin/v1/cluster");
      } catch (e) {
        if (gen === viewGeneration) showError(e, "Admin API");
        return;
      }
      if (gen !== viewGeneration) return;
      summary.textContent = `${c.nodes.length} node(s), ${c.streams} stream(s); controller leader: node ${c.controller_leader ?? "none"}; this page is served by node ${c.node_id}.`;
      fill(tbody, ...c.nodes.map((n) => nodeRow(n, refresh)));
    }
    await refresh();
    every(2000, refresh);
  }

  function nodeRow(n, refresh) {
    let drainCell;
    if (n.draining) {
      const start = Math.max(drains.get(n.id) || 0, n.replicas);
      if (!drains.has(n.id) || drains.get(n.id) < n.replicas) drains.set(n.id, start);
      const done = start ? (start - n.replicas) / start : 1;
      drainCell = h("td", { class: "drain-progress" },
        h("span", { class: "progress" }, h("span", { style: `width:${Math.round(done * 100)}%` })),
        n.replicas || n.replicas_moving_off
          ? ` ${start - n.replicas} of ${start} replicas moved${n.replicas_moving_off ? `, ${n.replicas_moving_off} moving` : ""}`
          : " drained: no replicas left");
    } else {
      drainCell = h("td", {}, h("button", {
        type: "button", class: "danger drain-btn", "data-node": n.id,
        onclick: async (ev) => {
          ev.target.disabled = true;
          drains.set(n.id, n.replicas);
          await guarded(`Drain node ${n.id}`, () => admin("POST", `/admin/v1/nodes/${n.id}/drain`));
          await refresh();
        },
      }, "Drain"));
    }
    return h("tr", { "data-node": n.id },
      h("td", {}, `node ${n.id}`),
      h("td", { class: "mono" }, n.cluster_addr),
      h("td", {}, badge(n.state)),
      h("td", {}, n.controller_leader ? "leader" : ""),
      h("td", {}, n.last_heartbeat_ms_ago === null ? "–" : `${n.last_heartbeat_ms_ago} ms ago`),
      h("td", { class: "num" }, n.replicas),
      h("td", { class: "num" }, n.replicas_moving_off),
      h("td", {}, n.draining ? badge("draining") : "no"),
      drainCell);
  }

  // ------------------------------------------------------------------------------------------
  // Sign-in
  // ------------------------------------------------------------------------------------------

  function openSignIn() {
    const c = credentials();
    $("#signin-akid").value = c ? c.accessKeyId : "";
    $("#signin-secret").value = "";
    $("#signin-region").value = c ? c.region : "us-east-1";
    $("#signin").hidden = false;
    $("#signin-akid").focus();
  }

  function showWho() {
    const c = credentials();
    $("#who").textContent = c ? `${c.accessKeyId} · ${c.region}` : "not signed in (unsigned requests)";
    $("#signin-open").textContent = c ? "Change keys" : "Sign in";
    $("#signout").hidden = !c;
  }

  function setup() {
    $("#signin-open").addEventListener("click", openSignIn);
    $("#signin-cancel").addEventListener("click", () => ($("#signin").hidden = true));
    $("#signout").addEventListener("click", () => {
      sessionStorage.removeItem(CREDS_KEY);
      showWho();
      route();
    });
    $("#signin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(CREDS_KEY, JSON.stringify({
        accessKeyId: $("#signin-akid").value.trim(),
        secretAccessKey: $("#signin-secret").value,
        region: $("#signin-region").value.trim() || "us-east-1",
      }));
      $("#signin").hidden = true;
      showWho();
      route();
    });
    $("#node-info").textContent = location.host;
    window.addEventListener("hashchange", route);
    showWho();
    route();
  }

  // For tests and the curious: the JavaScript SHA-256/HMAC and which one signs.
  window.kinesinConsole = { sha256js: (s) => hex(sha256js(utf8(s))), hmacjs: (k, m) => hex(hmacjs(utf8(k), utf8(m))), useSubtle };

  setup();
})();
