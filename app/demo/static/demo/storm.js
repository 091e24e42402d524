// The job storm: fire many ajax calls that each enqueue Celery jobs, then read the results back in batches.
// One canvas cell per job, redrawn in requestAnimationFrame batches, so 10,000 cells stay smooth.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const form = $("storm");
  const LIMITS = {
    stormMin: 10,
    stormMax: Number(form.dataset.stormMax),
    batchMax: Number(form.dataset.batchMax),
    pollBatch: Number(form.dataset.pollBatch),
    inflightMax: 500,
  };
  const POLL_BATCHES = 5; // status reads in parallel per round: the oldest open jobs first (jobs run FIFO)
  const POLL_PERIOD_MS = 250;

  const UNSENT = 0, SENDING = 1, QUEUED = 2, RUNNING = 3, DONE = 4, FAILED = 5;
  const STATE_CODES = { queued: QUEUED, running: RUNNING, done: DONE, failed: FAILED };
  const STATE_NAMES = ["not sent", "sending", "queued", "running", "done", "failed"];
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(name).trim();
  const STATE_COLOURS = [
    colour("--unsent"), "#2f4a69", colour("--queued"), colour("--running"), colour("--done"), colour("--failed"),
  ];
  const PALETTE = ["#3fb96d", "#4cc3d9", "#a78bfa", "#f472b6", "#f59e0b", "#84cc16", "#60a5fa", "#fb7185",
    "#2dd4bf", "#c084fc", "#facc15", "#38bdf8"];

  const fmt = new Intl.NumberFormat("en-US");
  const ms = (seconds) => (seconds >= 10 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds * 1000)} ms`);
  // Several durations in one unit: "35 · 60 · 80 ms" or "3.8 · 5.5 · 5.7 s".
  function durations(list) {
    if (list.some((v) => v >= 1)) return `${list.map((v) => v.toFixed(v >= 10 ? 0 : 1)).join(" · ")} s`;
    return `${list.map((v) => Math.round(v * 1000)).join(" · ")} ms`;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Input: the page checks only what is its own (the storm size, calls in flight); everything it sends is
  // passed to the API as typed, so bad values come back as the API's 400 and are shown as such.
  // ---------------------------------------------------------------------------------------------------------
  function asTyped(raw) {
    const text = String(raw).trim();
    return /^-?\d+$/.test(text) ? Number(text) : text;
  }

  function readForm() {
    const jobs = asTyped($("jobs").value);
    const inflight = asTyped($("inflight").value);
    if (!Number.isInteger(jobs) || jobs < LIMITS.stormMin || jobs > LIMITS.stormMax) {
      throw new Error(`jobs must be a whole number from ${LIMITS.stormMin} to ${fmt.format(LIMITS.stormMax)}`);
    }
    if (!Number.isInteger(inflight) || inflight < 1 || inflight > LIMITS.inflightMax) {
      throw new Error(`in flight must be a whole number from 1 to ${LIMITS.inflightMax}`);
    }
    return { jobs, inflight, per: asTyped($("per").value), kind: $("kind").value, ms: asTyped($("ms").value) };
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // Network failures (no HTTP answer at all, e.g. the browser's ERR_NETWORK_CHANGED) are retried a few
  // times and counted apart: they say nothing about the dyno. HTTP errors are never retried here.
  let networkRetries = 0;
  async function api(method, url, body) {
    let response;
    for (let attempt = 0; ; attempt++) {
      try {
        response = await fetch(url, {
          method,
          headers: body ? { "Content-Type": "application/json" } : {},
          body: body ? JSON.stringify(body) : undefined,
          cache: "no-store",
        });
        break;
      } catch (err) {
        if (attempt >= 4) throw new ApiError(0, `network error: ${err.message}`);
        networkRetries += 1;
        await sleep(100 * (attempt + 1));
      }
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.error ? data.error : response.statusText;
      throw new ApiError(response.status, `${response.status} from ${method} ${url.split("?")[0]}: ${detail}`);
    }
    return data;
  }

  // ---------------------------------------------------------------------------------------------------------
  // The storm's state: typed arrays indexed by cell, so 10,000 jobs cost little to keep and to draw.
  // ---------------------------------------------------------------------------------------------------------
  class Storm {
    constructor(spec) {
      Object.assign(this, spec);
      this.n = spec.jobs;
      this.state = new Uint8Array(this.n);
      this.ids = new Array(this.n);
      this.slotOf = new Map();
      this.web = new Int16Array(this.n).fill(-1);
      this.celery = new Int16Array(this.n).fill(-1);
      this.latency = new Float64Array(this.n).fill(NaN);
      this.nextSlot = 0;
      this.retry = [];
      this.sending = 0;
      this.counts = [this.n, 0, 0, 0, 0, 0];
      this.httpErrors = 0;
      this.latencies = [];
      this.webNames = [];
      this.celeryNames = [];
      this.webJobs = [];
      this.celeryJobs = [];
      this.stopped = false;
      this.failedFatally = false;
      this.startedAt = performance.now();
      this.finishedAt = null;
      this.samples = [[this.startedAt, 0]];
    }

    setState(slot, code) {
      const old = this.state[slot];
      if (old === code) return;
      this.counts[old] -= 1;
      this.counts[code] += 1;
      this.state[slot] = code;
      markDirty(slot);
    }

    open() {
      return this.counts[QUEUED] + this.counts[RUNNING];
    }

    finished() {
      const nothingLeftToSend = this.stopped || (this.nextSlot >= this.n && this.retry.length === 0);
      return nothingLeftToSend && this.sending === 0 && this.open() === 0;
    }

    nameIndex(names, tally, name) {
      let index = names.indexOf(name);
      if (index < 0) {
        index = names.length;
        names.push(name);
        tally.push(0);
      }
      return index;
    }
  }

  let storm = null;

  // Enqueue: `inflight` loops, each keeping one POST /api/jobs in flight until every cell is sent.
  async function sender(s) {
    while (!s.stopped) {
      let first, count;
      if (s.retry.length) {
        [first, count] = s.retry.shift();
      } else if (s.nextSlot < s.n) {
        first = s.nextSlot;
        count = Number.isInteger(s.per) && s.per > 0 ? Math.min(s.per, s.n - first) : s.per;
        s.nextSlot += Number.isInteger(count) ? count : 1;
      } else if (s.sending > 0) {
        await sleep(100); // a call still in flight may fail and hand its jobs back
        continue;
      } else {
        break;
      }
      const taken = Number.isInteger(count) ? count : 1;
      s.sending += 1;
      for (let i = first; i < first + taken; i++) s.setState(i, SENDING);
      try {
        const data = await api("POST", "/api/jobs", { kind: s.kind, ms: s.ms, count });
        data.jobs.forEach((job, k) => {
          const slot = first + k;
          s.ids[slot] = job.id;
          s.slotOf.set(job.id, slot);
          if (s.state[slot] === SENDING) s.setState(slot, QUEUED);
        });
      } catch (err) {
        if (err.status) s.httpErrors += 1;
        for (let i = first; i < first + taken; i++) s.setState(i, UNSENT);
        if (err.status >= 400 && err.status < 500) {
          // The API refused what we asked: say why and stop, rather than send the same mistake 10,000 times.
          s.stopped = true;
          s.failedFatally = true;
          showError(err.message);
        } else {
          // The dyno is busy or restarting (a 5xx, or no answer): send these jobs again in a moment.
          showError(`${err.message} (retrying)`);
          s.retry.push([first, count]);
          await sleep(500);
        }
      } finally {
        s.sending -= 1;
      }
    }
  }

  // Read back: the oldest open jobs, POLL_BATCHES requests of up to pollBatch ids each, every POLL_PERIOD_MS.
  async function poller(s) {
    while (!s.finished()) {
      const began = performance.now();
      const wanted = [];
      const limit = LIMITS.pollBatch * POLL_BATCHES;
      for (let i = 0; i < s.nextSlot && wanted.length < limit; i++) {
        const code = s.state[i];
        if (code === QUEUED || code === RUNNING) wanted.push(s.ids[i]);
      }
      const reads = [];
      for (let i = 0; i < wanted.length; i += LIMITS.pollBatch) {
        const ids = wanted.slice(i, i + LIMITS.pollBatch);
        reads.push(api("GET", `/api/jobs?ids=${ids.join(",")}`).then((data) => absorb(s, data), (err) => {
          if (err.status) s.httpErrors += 1;
          showError(err.message);
        }));
      }
      await Promise.all(reads);
      await sleep(Math.max(0, POLL_PERIOD_MS - (performance.now() - began)));
    }
    s.finishedAt = performance.now();
    updateCounters();
    document.body.dataset.status = s.failedFatally ? "error" : "finished";
    $("start").disabled = false;
    $("stop").disabled = true;
  }

  function absorb(s, data) {
    for (const job of data.jobs) {
      const slot = s.slotOf.get(job.id);
      if (slot === undefined) continue;
      const code = STATE_CODES[job.state] ?? QUEUED;
      if (s.web[slot] < 0 && job.web_worker) {
        const w = s.nameIndex(s.webNames, s.webJobs, job.web_worker);
        s.web[slot] = w;
        s.webJobs[w] += 1;
      }
      if ((code === DONE || code === FAILED) && job.celery_worker && s.celery[slot] < 0) {
        const c = s.nameIndex(s.celeryNames, s.celeryJobs, job.celery_worker);
        s.celery[slot] = c;
        s.celeryJobs[c] += 1;
      }
      if (code === DONE && job.finished_at && job.enqueued_at && Number.isNaN(s.latency[slot])) {
        const latency = job.finished_at - job.enqueued_at;
        s.latency[slot] = latency;
        s.latencies.push(latency);
      }
      if (code === FAILED) s.errorText = job.error;
      s.setState(slot, code);
    }
    for (const id of data.unknown || []) {
      // Only an id the dyno forgot (a flushed Redis) lands here: count it as failed, loudly.
      const slot = s.slotOf.get(id);
      if (slot !== undefined) s.setState(slot, FAILED);
      showError(`the dyno does not know job ${id}`);
    }
  }

  const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));

  // ---------------------------------------------------------------------------------------------------------
  // Drawing: a canvas laid out so any storm fits, and only the cells that changed repainted per frame.
  // ---------------------------------------------------------------------------------------------------------
  const canvas = $("grid");
  const ctx = canvas.getContext("2d", { alpha: false });
  const layout = { cell: 10, cols: 1, gap: 1 };
  let dirty = [];
  let repaintAll = true;
  let frameRequested = false;

  function markDirty(slot) {
    dirty.push(slot);
    requestFrame();
  }

  function requestFrame() {
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(draw);
    }
  }

  function relayout() {
    const n = storm ? storm.n : 1000;
    const width = Math.max(200, $("grid-wrap").clientWidth);
    const maxHeight = Math.max(320, Math.min(620, window.innerHeight - 330));
    let cell = Math.floor(Math.sqrt((width * maxHeight) / n));
    cell = Math.max(3, Math.min(28, cell));
    let cols = Math.floor(width / cell);
    while (Math.ceil(n / cols) * cell > maxHeight && cell > 3) {
      cell -= 1;
      cols = Math.floor(width / cell);
    }
    const rows = Math.ceil(n / cols);
    const dpr = window.devicePixelRatio || 1;
    layout.cell = cell;
    layout.cols = cols;
    layout.gap = cell >= 6 ? 1 : 0;
    canvas.style.height = `${rows * cell}px`;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(rows * cell * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    repaintAll = true;
    requestFrame();
  }

  function cellColour(slot) {
    const code = storm ? storm.state[slot] : UNSENT;
    if (code === DONE && colourBy !== "state") {
      const index = colourBy === "celery" ? storm.celery[slot] : storm.web[slot];
      if (index >= 0) return PALETTE[index % PALETTE.length];
    }
    return STATE_COLOURS[code];
  }

  function paint(slot) {
    const { cell, cols, gap } = layout;
    ctx.fillStyle = cellColour(slot);
    ctx.fillRect((slot % cols) * cell, Math.floor(slot / cols) * cell, cell - gap, cell - gap);
  }

  function draw() {
    frameRequested = false;
    const n = storm ? storm.n : 1000;
    if (repaintAll) {
      repaintAll = false;
      dirty = [];
      ctx.fillStyle = colour("--panel");
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < n; i++) paint(i);
      return;
    }
    const batch = dirty;
    dirty = [];
    for (const slot of batch) paint(slot);
  }

  let colourBy = "state";
  $("colour-by").addEventListener("change", (event) => {
    colourBy = event.target.value;
    repaintAll = true;
    requestFrame();
  });
  window.addEventListener("resize", relayout);

  // Hover: what one job was, who enqueued it, who ran it.
  const tip = $("tip");
  canvas.addEventListener("mousemove", (event) => {
    if (!storm) return;
    const rect = canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const y = event.clientY - rect.top;
    const col = Math.floor(x / layout.cell);
    const slot = Math.floor(y / layout.cell) * layout.cols + col;
    if (col >= layout.cols || slot < 0 || slot >= storm.n) {
      tip.hidden = true;
      return;
    }
    const lines = [`<b>job ${slot + 1}</b> · ${STATE_NAMES[storm.state[slot]]} · ${storm.kind} ${storm.ms} ms`];
    if (storm.ids[slot]) lines.push(`<small>${storm.ids[slot]}</small>`);
    if (storm.web[slot] >= 0) lines.push(`enqueued by ${storm.webNames[storm.web[slot]]}`);
    if (storm.celery[slot] >= 0) lines.push(`ran in ${storm.celeryNames[storm.celery[slot]]}`);
    if (!Number.isNaN(storm.latency[slot])) lines.push(`enqueue→done ${ms(storm.latency[slot])}`);
    tip.innerHTML = lines.join("<br>");
    tip.hidden = false;
    const left = Math.min(x + 14, rect.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${y + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => {
    tip.hidden = true;
  });

  // ---------------------------------------------------------------------------------------------------------
  // Counters, latency percentiles, who-handled-what: recomputed four times a second, not per job.
  // ---------------------------------------------------------------------------------------------------------
  function percentile(sorted, p) {
    if (!sorted.length) return NaN;
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[rank];
  }

  let latencyCount = -1;
  function updateCounters() {
    const s = storm;
    if (!s) return;
    const now = s.finishedAt || performance.now();
    const done = s.counts[DONE];
    $("c-sent").textContent = fmt.format(s.n - s.counts[UNSENT] - s.counts[SENDING]);
    $("c-queued").textContent = fmt.format(s.counts[QUEUED]);
    $("c-running").textContent = fmt.format(s.counts[RUNNING]);
    $("c-done").textContent = fmt.format(done);
    $("c-failed").textContent = fmt.format(s.counts[FAILED]);
    $("c-errors").textContent = fmt.format(s.httpErrors);
    $("c-retries").textContent = networkRetries ? `${fmt.format(networkRetries)} network retries` : "";
    $("c-elapsed").textContent = `${((now - s.startedAt) / 1000).toFixed(1)} s`;

    s.samples.push([now, done]);
    while (s.samples.length > 2 && now - s.samples[0][0] > 2000) s.samples.shift();
    const [t0, d0] = s.samples[0];
    const recent = now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
    const overall = now > s.startedAt ? (done * 1000) / (now - s.startedAt) : 0;
    $("c-rate").textContent = `${fmt.format(Math.round(s.finishedAt ? 0 : recent))} · ${fmt.format(Math.round(overall))}`;

    if (s.latencies.length !== latencyCount) {
      latencyCount = s.latencies.length;
      const sorted = Float64Array.from(s.latencies).sort();
      const parts = [50, 95, 99].map((p) => percentile(sorted, p));
      $("c-lat").textContent = parts.some(Number.isNaN) ? "–" : durations(parts);
      $("c-lat").dataset.p50 = parts[0];
      $("c-lat").dataset.p95 = parts[1];
      $("c-lat").dataset.p99 = parts[2];
    }
    renderWho($("who-web"), s.webNames, s.webJobs, "web");
    renderWho($("who-celery"), s.celeryNames, s.celeryJobs, "celery");
  }

  function renderWho(body, names, tally, kind) {
    const rows = names.map((name, i) => {
      const dot = `<span class="dot" style="background:${PALETTE[i % PALETTE.length]}"></span>`;
      return `<tr><td>${dot}${escapeHtml(name)}</td><td>${fmt.format(tally[i])}</td></tr>`;
    });
    const html = rows.join("") || `<tr><td colspan="2">–</td></tr>`;
    if (body.dataset.html !== html) {
      body.innerHTML = html;
      body.dataset.html = html;
      body.dataset.kind = kind;
    }
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }

  setInterval(updateCounters, 250);

  // ---------------------------------------------------------------------------------------------------------
  // The dyno's vital signs: memory of the whole process tree against the quota, and beat's last tick.
  // ---------------------------------------------------------------------------------------------------------
  let peakPss = 0;
  async function pollDyno() {
    try {
      const d = await api("GET", "/api/dyno");
      const quota = d.memory_quota_mb;
      const pss = d.memory.pss_mb;
      peakPss = Math.max(peakPss, pss);
      $("mem-fill").style.width = `${Math.min(100, (100 * pss) / quota)}%`;
      $("mem-peak").style.left = `${Math.min(99.5, (100 * peakPss) / quota)}%`;
      $("mem-pss").textContent = pss.toFixed(0);
      $("mem-quota").textContent = quota;
      $("mem-rss").textContent = d.memory.rss_mb.toFixed(0);
      $("mem-peak-text").textContent = peakPss.toFixed(0);
      const groups = new Map();
      for (const p of d.memory.processes) {
        const g = groups.get(p.name) || { n: 0, pss: 0 };
        g.n += 1;
        g.pss += p.pss_mb;
        groups.set(p.name, g);
      }
      const rows = [...groups.entries()]
        .sort((a, b) => b[1].pss - a[1].pss)
        .map(([name, g]) => `<tr><td>${escapeHtml(name)}${g.n > 1 ? ` ×${g.n}` : ""}</td><td>${g.pss.toFixed(1)} MB</td></tr>`);
      $("procs").tBodies[0].innerHTML = rows.join("");
      const tick = d.beat_last_tick;
      $("beat").textContent = tick ? `${Math.max(0, Math.round(Date.now() / 1000 - tick))} s ago` : "not yet";
    } catch (err) {
      $("beat").textContent = "?";
    }
  }
  pollDyno();
  setInterval(pollDyno, 1000);

  // ---------------------------------------------------------------------------------------------------------
  // Start and stop.
  // ---------------------------------------------------------------------------------------------------------
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (storm && !storm.finished()) return;
    clearError();
    let spec;
    try {
      spec = readForm();
    } catch (err) {
      showError(err.message);
      document.body.dataset.status = "error";
      return;
    }
    storm = new Storm(spec);
    latencyCount = -1;
    $("grid-caption").textContent = `${fmt.format(spec.jobs)} jobs, ${spec.kind} ${spec.ms} ms each`;
    document.body.dataset.status = "running";
    $("start").disabled = true;
    $("stop").disabled = false;
    relayout();
    for (let i = 0; i < spec.inflight; i++) sender(storm);
    poller(storm);
  });

  $("stop").addEventListener("click", () => {
    if (storm) storm.stopped = true;
    $("stop").disabled = true;
  });

  document.body.dataset.status = "idle";
  relayout();
})();
