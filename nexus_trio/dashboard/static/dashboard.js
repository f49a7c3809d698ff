// nexus-trio dashboard: reads /v1/dashboard/events (server-sent events over fetch, so that an
// inbound API key can be sent) and renders what the gateway knows. No dependencies.
"use strict";

(() => {
  const EVENTS_URL = "v1/dashboard/events";
  const KEY_STORAGE = "nexus-trio.api-key";
  const MAX_LOG = 200;
  const RETRY_MS = [1000, 2000, 5000];

  const view = {
    log: [],          // request-log entries, oldest first
    lastSeq: 0,       // highest entry seq received
    snapshot: null,   // the latest snapshot
    draining: false,  // the gateway said the stream ended because it is draining
    retries: 0,
  };

  const $ = (id) => document.getElementById(id);

  // An element with attributes and children (strings become text nodes: nothing is parsed).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function badge(text, tone) {
    return el("span", { class: `badge ${tone}` }, text);
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
  }

  function fmtPct(rate) {
    if (rate === null || rate === undefined) return "–";
    return `${(rate * 100).toFixed(1)} %`;
  }

  function fmtDuration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s % 60} s`;
    return `${s} s`;
  }

  function fmtClock(epochSeconds) {
    return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
  }

  function ago(epochSeconds) {
    const now = view.snapshot ? view.snapshot.time : Date.now() / 1000;
    return `${fmtDuration(now - epochSeconds)} ago`;
  }

  function setConnection(text, tone) {
    const node = $("connection");
    node.textContent = text;
    node.className = tone || "";
  }

  // --- the key form (inbound auth) ---------------------------------------------------------

  function askForKey(message) {
    $("main").hidden = true;
    view.snapshot = null;
    view.log = [];
    view.lastSeq = 0;
    $("key-message").textContent =
      message || "This gateway requires an API key to show its dashboard.";
    $("key-form").hidden = false;
    $("key-input").focus();
    setConnection("Waiting for an API key.", "warn");
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    connect();
  });

  // --- the event stream --------------------------------------------------------------------

  function retryLater() {
    const delay = RETRY_MS[Math.min(view.retries, RETRY_MS.length - 1)];
    view.retries += 1;
    setTimeout(connect, delay);
  }

  async function connect() {
    const headers = { Accept: "text/event-stream" };
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(EVENTS_URL, { headers, cache: "no-store" });
    } catch (error) {
      setConnection(view.draining ? "Gateway stopped (drained); retrying…" : "Gateway unreachable; retrying…", "bad");
      retryLater();
      return;
    }
    if (response.status === 401) {
      if (key) sessionStorage.removeItem(KEY_STORAGE);
      askForKey(key ? "That key was refused; enter a valid API key." : "");
      return;
    }
    if (!response.ok || !response.body) {
      setConnection(`Gateway answered ${response.status}; retrying…`, "bad");
      retryLater();
      return;
    }
    view.retries = 0;
    view.draining = false;
    $("key-form").hidden = true;
    $("main").hidden = false;
    setConnection("Live: updated every second.", "");
    await readEvents(response.body.getReader());
    if (view.draining) {
      setConnection("The gateway is draining and closed this view; reconnecting…", "warn");
    } else {
      setConnection("Connection lost; reconnecting…", "bad");
    }
    retryLater();
  }

  async function readEvents(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      // The connection broke: the caller reconnects.
    }
  }

  function handleEvent(block) {
    let name = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    const payload = data ? JSON.parse(data) : null;
    if (name === "log") {
      addEntries(payload);
      renderLog();
    } else if (name === "snapshot") {
      view.snapshot = payload;
      addEntries(payload.requests);
      render();
    } else if (name === "end") {
      view.draining = true;
      if (view.snapshot) view.snapshot.state = "draining";
      renderSummary();
    }
  }

  function addEntries(entries) {
    for (const entry of entries) {
      if (entry.seq <= view.lastSeq) continue;
      view.lastSeq = entry.seq;
      view.log.push(entry);
    }
    if (view.log.length > MAX_LOG) view.log.splice(0, view.log.length - MAX_LOG);
  }

  // --- rendering ---------------------------------------------------------------------------

  function render() {
    renderSummary();
    renderBackends();
    renderCharts();
    renderLog();
    renderSpend();
    renderKeys();
  }

  function renderKeys() {
    const panel = view.snapshot.keys;
    $("keys").hidden = !panel;
    if (!panel) return;
    const limit = (n, unit) => (n ? `${n} ${unit}` : null);
    const rows = panel.keys.map((key) => {
      const limits = [
        limit(key.requests_per_minute, "req/min"),
        limit(key.tokens_per_minute, "tok/min"),
        limit(key.max_concurrent_requests, "at once"),
      ].filter(Boolean).join(", ") || "none";
      const tone = { active: "ok", expired: "warn", revoked: "bad" }[key.state] || "info";
      return el("tr", { "data-key": key.name },
        el("td", {}, key.name, key.admin ? " (admin)" : ""),
        el("td", {}, key.source),
        el("td", {}, badge(key.state, tone)),
        el("td", {}, limits),
        el("td", { class: "num" }, key.monthly_budget_usd ? fmtUsd(key.monthly_budget_usd) : "–"),
        el("td", { class: "num" }, fmtUsd(key.spend_usd)),
        el("td", {}, key.last_used_at ? ago(Date.parse(key.last_used_at) / 1000) : "–"));
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7" }, "No named keys.")));
    $("keys-count").textContent = panel.total > panel.keys.length
      ? `${panel.keys.length} of ${panel.total} keys shown (the admin API lists them all).`
      : `${panel.total} key(s).`;
    $("keys-table").tBodies[0].replaceChildren(...rows);
  }

  function fmtUsd(usd) {
    if (usd === null || usd === undefined) return "–";
    return `$${usd.toFixed(usd > 0 && usd < 1 ? 4 : 2)}`;
  }

  function renderSpend() {
    const spend = view.snapshot.stats.spend;
    $("spend").hidden = !spend.enabled;
    if (!spend.enabled) return;
    const budget = spend.budget;
    const stateBadge = (state) => badge(state, { ok: "ok", soft: "warn", hard: "bad" }[state] || "info");
    const amounts = (b) => el("span", {}, stateBadge(b.state), ` ${fmtUsd(b.remaining_usd)} left of ${fmtUsd(b.limit_usd)}`);
    // A tenant key sees the gateway budget's state only: its amounts are null (docs/keys.md#roles).
    let budgetText = budget.limit_usd === null ? "none" : amounts(budget);
    if (view.snapshot.stats.role === "tenant") {
      budgetText = el("span", {}, stateBadge(budget.state), " (amounts shown to admin keys only)");
    }
    const items = [
      ["Month (UTC)", spend.month],
      ["Spent", fmtUsd(spend.total_usd)],
      ["Estimated part", fmtUsd(spend.estimated_usd)],
      ["Charged requests", spend.requests],
      ["Budget", budgetText],
      ["At hard limit", budget.hard_limit_action.replaceAll("_", " ")],
      ...Object.entries(spend.key_budgets || {}).map(([name, b]) => [`Budget of key ${name}`, amounts(b)]),
      ["Ledger", spend.store_up ? badge("writing", "ok") : badge("write failed", "bad")],
    ];
    $("spend-summary").replaceChildren(
      ...items.map(([label, value]) => el("div", { "data-field": label }, el("dt", {}, label), el("dd", {}, value))),
    );
    const rows = [];
    for (const [group, values] of [["key", spend.by_key], ["backend", spend.by_backend], ["model", spend.by_model]]) {
      for (const [name, usd] of Object.entries(values)) {
        rows.push(el("tr", {}, el("td", {}, group), el("td", {}, name), el("td", { class: "num" }, fmtUsd(usd))));
      }
    }
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "3" }, "Nothing charged this month yet.")));
    $("spend-table").tBodies[0].replaceChildren(...rows);
  }

  function renderSummary() {
    const s = view.snapshot;
    if (!s) return;
    const reload = s.last_reload;
    let reloadText = "none yet";
    if (reload) {
      reloadText = reload.ok ? `ok at ${fmtClock(reload.time)}` : `failed at ${fmtClock(reload.time)}`;
    }
    const items = [
      ["Version", s.version],
      ["Uptime", fmtDuration(s.uptime_seconds)],
      ["State", badge(s.state, s.state === "ready" ? "ok" : "warn")],
      ["In flight", s.in_flight],
      ["Queued", s.queue_length],
      ["Requests/s", s.rates.requests_per_second === null ? "–" : s.rates.requests_per_second.toFixed(2)],
      ["Error rate", fmtPct(s.rates.error_rate)],
      ["Restart required", s.restart_required ? badge("yes", "warn") : "no"],
      ["Last reload", reloadText],
    ];
    $("summary").replaceChildren(
      ...items.map(([label, value]) => el("div", { "data-field": label }, el("dt", {}, label), el("dd", {}, value))),
    );
    const alerts = [];
    if (s.state === "draining") {
      alerts.push(el("li", { class: "bad" }, "The gateway is draining: it finishes the requests in flight and stops."));
    }
    for (const model of s.panic_models) {
      alerts.push(el("li", { class: "bad" }, `Quality panic for model ${model}: every backend serving it is excluded, so routing ignores quality for it.`));
    }
    if (reload && !reload.ok) alerts.push(el("li", { class: "bad" }, `Last reload failed, the old configuration is running: ${reload.error}`));
    if (reload && reload.restart_required.length) {
      alerts.push(el("li", {}, `Restart required for: ${reload.restart_required.join(", ")}`));
    }
    $("alerts").replaceChildren(...alerts);
  }

  function healthCell(details) {
    const tone = { healthy: "ok", unhealthy: "bad", unknown: "info" }[details.health] || "info";
    const probe = details.last_probe;
    let sub = "health checks off";
    if (probe) sub = probe.ok ? `probe ok ${ago(probe.time)}` : `probe failed ${ago(probe.time)}: ${probe.error}`;
    return el("td", {}, badge(details.health, tone), el("span", { class: "sub" }, sub));
  }

  function qualityCell(details) {
    const state = details.quality_state;
    const tone = { healthy: "ok", excluded: "bad", probing: "warn" }[state] || "info";
    let sub = null;
    if (state === "excluded") {
      sub = `${(details.exclusion_reason || "").replaceAll("_", " ")}; next probe in ${fmtDuration(details.next_probe_in_seconds)}`;
    } else if (state === "probing") {
      sub = `${(details.exclusion_reason || "").replaceAll("_", " ")}; probe due now`;
    }
    return el("td", {}, badge(state, tone), sub && el("span", { class: "sub" }, sub));
  }

  // A model with what the backend told of its residency: "m (loaded, 96 MB)".
  function modelResidency(backend, model) {
    const agent = (backend.agents || []).find((a) => a.model === model);
    const known = agent && agent.residency;
    if (!known || known.state === "unknown") return model;
    const vram = known.vram_bytes ? `, ${Math.round(known.vram_bytes / 1e6)} MB` : "";
    return `${model} (${known.state}${vram})`;
  }

  function renderBackends() {
    const s = view.snapshot;
    const rows = s.stats.backends.map((backend) => {
      const details = s.backends[backend.name];
      const quality = backend.quality;
      const errors = quality
        ? `${fmtPct(quality.error_rate_1h)} / ${fmtPct(1 - quality.success_rate_24h)}`
        : "no data";
      const ttft = quality && quality.avg_ttft_ms !== null ? fmtMs(quality.avg_ttft_ms) : "–";
      const penalty = details.ttft_penalty > 0 ? `penalty ${fmtPct(details.ttft_penalty)}` : "no penalty";
      const cold = backend.cold_starts
        ? `; ${backend.cold_starts} cold start(s), avg ${fmtMs(backend.avg_cold_start_ms)}`
        : "";
      const limit = details.max_concurrent_requests || "∞";
      const cooldowns = Object.entries(details.cooldowns)
        .map(([model, seconds]) => `${model}: ${fmtDuration(seconds)}`)
        .join(", ");
      return el(
        "tr",
        { "data-backend": backend.name },
        el("th", { scope: "row" }, backend.name, el("span", { class: "sub" }, backend.type)),
        healthCell(details),
        qualityCell(details),
        el("td", { class: "num" }, errors),
        el("td", { class: "num" }, ttft, el("span", { class: "sub" }, penalty + cold)),
        el("td", { class: "num" }, `${details.in_flight} / ${limit}`),
        el("td", {}, cooldowns || "none"),
        el("td", {}, details.models.map((m) => modelResidency(backend, m)).join(", ") || "none"),
      );
    });
    $("backends").tBodies[0].replaceChildren(...rows);
    updateBackendFilter(s.stats.backends.map((b) => b.name));
  }

  // --- charts (hand-written SVG) -----------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  const W = 480;
  const H = 170;
  const PAD = { left: 40, right: 8, top: 8, bottom: 20 };

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const step = 10 ** Math.floor(Math.log10(value));
    return Math.ceil(value / step) * step;
  }

  // series: [{label, index, values, dashed}]; values: 60 numbers or nulls, oldest first.
  function lineChart(container, series, unit) {
    const values = series.flatMap((line) => line.values.filter((v) => v !== null));
    const top = niceMax(Math.max(0, ...values));
    const x = (i) => PAD.left + (i / 59) * (W - PAD.left - PAD.right);
    const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": container.previousElementSibling.textContent });
    chart.append(
      svg("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }),
      svg("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: y(top), y2: y(top) }),
      svg("text", { x: PAD.left - 4, y: y(top) + 4, "text-anchor": "end" }, `${top}${unit}`),
      svg("text", { x: PAD.left - 4, y: y(0) + 4, "text-anchor": "end" }, "0"),
      svg("text", { x: PAD.left, y: H - 4 }, "60 min ago"),
      svg("text", { x: W - PAD.right, y: H - 4, "text-anchor": "end" }, "now"),
    );
    for (const line of series) {
      // A gap (null) splits the line.
      let points = [];
      const flush = () => {
        const tone = `series-${line.index % 6}`;
        if (points.length === 1) {
          // A lone minute between gaps: a dot, since a one-point line draws nothing.
          const [cx, cy] = points[0].split(",");
          chart.append(svg("circle", { class: tone, cx, cy, r: 2 }));
        } else if (points.length) {
          chart.append(svg("polyline", { class: `${tone}${line.dashed ? " dashed" : ""}`, points: points.join(" ") }));
        }
        points = [];
      };
      line.values.forEach((v, i) => {
        if (v === null) flush();
        else points.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      });
      flush();
    }
    const legend = el("div", { class: "legend" });
    for (const line of series) {
      if (!line.dashed) legend.append(el("span", { class: `series-${line.index % 6}` }, line.label));
    }
    container.replaceChildren(chart, legend);
  }

  function renderCharts() {
    const s = view.snapshot;
    const names = s.stats.backends.map((b) => b.name);
    const requests = [];
    const ttft = [];
    names.forEach((name, index) => {
      const history = s.backends[name].history;
      requests.push({ label: name, index, values: history.requests, dashed: false });
      requests.push({ label: `${name} failures`, index, values: history.failures, dashed: true });
      ttft.push({ label: name, index, values: history.avg_ttft_ms, dashed: false });
    });
    lineChart($("chart-requests"), requests, "");
    lineChart($("chart-ttft"), ttft, " ms");
  }

  // --- the request log ---------------------------------------------------------------------

  function statusText(entry) {
    if (entry.status === null) return "cancelled";
    return entry.truncated ? `${entry.status} truncated` : String(entry.status);
  }

  function statusTone(entry) {
    if (entry.status === null) return "info";
    if (entry.truncated || entry.status >= 500) return "bad";
    return entry.status >= 400 ? "warn" : "ok";
  }

  function matches(entry, backend, status) {
    if (backend && entry.backend !== backend) return false;
    if (!status) return true;
    if (status === "cancelled") return entry.status === null;
    if (status === "truncated") return entry.truncated;
    return entry.status !== null && `${Math.floor(entry.status / 100)}xx` === status;
  }

  function updateBackendFilter(names) {
    const select = $("filter-backend");
    const known = Array.from(select.options).slice(1).map((o) => o.value);
    const wanted = [...new Set([...names, ...view.log.map((e) => e.backend).filter(Boolean)])];
    if (wanted.every((name) => known.includes(name))) return;
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "all"), ...[...new Set([...known, ...wanted])].sort().map((name) => el("option", { value: name }, name)));
    select.value = chosen;
  }

  function renderLog() {
    const backend = $("filter-backend").value;
    const status = $("filter-status").value;
    const shown = view.log.filter((entry) => matches(entry, backend, status)).reverse();
    // Entries name their key for admin keys only (a tenant's are all its own).
    const showKey = view.log.some((entry) => entry.key);
    $("log-key-head").hidden = !showKey;
    const rows = shown.map((entry) =>
      el(
        "tr",
        { "data-status": statusText(entry) },
        el("td", { class: "num" }, fmtClock(entry.time)),
        showKey ? el("td", {}, entry.key || "–") : null,
        el("td", { class: "id", title: entry.request_id }, entry.request_id),
        el("td", {}, entry.route.replace("/v1/", "")),
        el("td", {}, entry.requested_model === entry.served_model || !entry.served_model
          ? entry.requested_model || "–"
          : `${entry.requested_model || "–"} → ${entry.served_model}`),
        el("td", {}, entry.backend || "none"),
        el("td", {}, badge(statusText(entry), statusTone(entry)), entry.error_code && entry.status !== null && entry.status >= 400 ? el("span", { class: "sub" }, entry.error_code) : null),
        el("td", { class: "num" }, fmtMs(entry.duration_ms)),
        el("td", { class: "num" }, fmtMs(entry.ttft_ms)),
        el("td", { class: "num" }, entry.attempts),
        el("td", {}, entry.route_reason || "–"),
        el("td", {}, entry.stream ? "yes" : "no"),
      ),
    );
    $("log").tBodies[0].replaceChildren(...rows);
    $("log-count").textContent = `${shown.length} of ${view.log.length} shown`;
  }

  $("filter-backend").addEventListener("change", renderLog);
  $("filter-status").addEventListener("change", renderLog);

  connect();
})();
