// The analytics dashboard: signs in (or takes a token), then every few seconds reads the series API and
// redraws one uPlot chart per panel, with a legend table of each line's latest window and range total.
// The numbers in the tables also sit in data- attributes (data-latest, data-range) for tests and scrapers, as
// do the counts of refreshes drawn and failed on <body> (data-refreshes, data-failures).
(function () {
  'use strict';

  const body = document.body;
  const refreshMs = Math.max(500, Number(body.dataset.refreshMs) || 5000);
  const FETCH_TIMEOUT_MS = Math.max(10_000, 2 * refreshMs);
  const TOKEN = 'parley.analytics.token';
  const COLORS = ['#2f6fdf', '#e0782b', '#2e9d5b', '#b03fb5', '#c9a227', '#6b7280'];
  const SPANS = { '1m': { ms: 60_000, count: 60 }, '1h': { ms: 3_600_000, count: 48 } };

  // A series is one line: a metric, optionally one label value. `sum`: the range column adds windows up;
  // `max`: it shows the largest. `zero`: a window with no row counts as 0 (counts), else it is a gap.
  const PANELS = [
    { id: 'messages', title: 'Messages by kind', note: 'messages accepted per window', range: 'sum', zero: true,
      series: ['text', 'attachment', 'receipt'].map((k) => ({ name: k, metric: 'messages', labels: { kind: k } })) },
    { id: 'transport', title: 'Messages by transport', note: 'by the sender’s connection', range: 'sum', zero: true,
      series: ['tcp', 'tls', 'ws'].map((t) => ({ name: t, metric: 'messages_by_transport', labels: { transport: t } })) },
    { id: 'users', title: 'Active users', note: 'distinct senders per window (exact up to a threshold, HyperLogLog beyond)', range: 'max', zero: true,
      series: [{ name: 'active users', metric: 'active_users' }] },
    { id: 'latency', title: 'Delivery latency (ms)', note: 'accept → “delivered” receipt, by the receipt’s window', range: 'max', zero: false,
      series: ['p50', 'p95', 'p99'].map((q) => ({ name: q, metric: 'delivery_latency_ms', labels: { q } })) },
    { id: 'backlog', title: 'Offline backlog', note: '1:1 messages without a “delivered” receipt when their minute closed; deliveries that had waited', range: 'sum', zero: true,
      series: [
        { name: 'pending', metric: 'backlog_pending' },
        { name: 'delivered after waiting', metric: 'backlog_delivered' },
      ] },
    { id: 'backlog-wait', title: 'Backlog wait (ms)', note: 'how long the messages delivered from the backlog waited', range: 'max', zero: false,
      series: [
        { name: 'p50', metric: 'backlog_wait_ms', labels: { q: 'p50' } },
        { name: 'max', metric: 'backlog_wait_ms', labels: { q: 'max' } },
      ] },
    { id: 'late', title: 'Late events', note: 'events that arrived after their window closed (watermark − lateness)', range: 'sum', zero: true,
      series: [{ name: 'late', metric: 'late_events', labels: { job: 'traffic' } }] },
  ];
  const TOP = { id: 'top', title: 'Top conversations', note: 'chat messages in the latest window with data', metric: 'top_conversations' };

  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k === 'text') e.textContent = v;
      else if (k === 'style') e.style.cssText = v; // through the CSSOM: the page's CSP refuses style attributes
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };
  const labelText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(',');
  const fmt = (v) => (v === null || v === undefined ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(1));

  let token = sessionStorage.getItem(TOKEN);
  let timer = null;
  let refreshes = 0;
  let failures = 0;
  const charts = new Map();

  function showLogin(message) {
    token = null;
    sessionStorage.removeItem(TOKEN);
    clearTimeout(timer);
    $('#panels').hidden = true;
    $('#login').hidden = false;
    $('#signout').hidden = true;
    $('#status').textContent = 'signed out';
    $('#login-error').textContent = message || '';
    $('#login input[name=token]').value = '';
  }

  $('#login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    const pasted = String(form.get('token') || '').trim();
    try {
      if (pasted) token = pasted;
      else if (!form.get('username')) throw new Error('a user and password, or a token');
      else {
        const res = await fetch('/v1/auth/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: form.get('username'), password: form.get('password') }),
        });
        const answer = await res.json().catch(() => ({}));
        if (!res.ok) throw new Error(answer.error ? answer.error.message : `sign-in failed (${res.status})`);
        token = answer.token;
      }
      sessionStorage.setItem(TOKEN, token);
      start();
    } catch (err) {
      $('#login-error').textContent = err.message;
    }
  });
  $('#signout').addEventListener('click', () => showLogin());
  $('#window').addEventListener('change', () => {
    for (const c of charts.values()) c.plot.destroy();
    charts.clear();
    build();
    refresh();
  });

  function build() {
    const main = $('#panels');
    main.replaceChildren();
    for (const panel of PANELS) {
      const rows = panel.series.map((s, i) =>
        el('tr', { dataset: { metric: s.metric, labels: labelText(s.labels) } },
          el('td', {}, el('span', { class: 'swatch', style: `background:${COLORS[i]}` }), s.name),
          el('td', { class: 'num latest', dataset: { metric: s.metric, labels: labelText(s.labels), latest: '' }, text: '–' }),
          el('td', { class: 'num range', dataset: { metric: s.metric, labels: labelText(s.labels), range: '' }, text: '–' })),
      );
      const chart = el('div', { class: 'chart' });
      const section = el('section', { class: 'panel', id: `panel-${panel.id}` },
        el('h2', { text: panel.title }),
        el('p', { class: 'note', text: panel.note }),
        chart,
        el('table', { class: 'legend' },
          el('thead', {}, el('tr', {}, el('th', { text: 'series' }), el('th', { class: 'num', text: 'latest window' }), el('th', { class: 'num', text: panel.range === 'sum' ? 'range total' : 'range max' }))),
          el('tbody', {}, ...rows)),
      );
      main.append(section);
      charts.set(panel.id, { panel, chart, plot: null });
    }
    main.append(el('section', { class: 'panel', id: `panel-${TOP.id}` },
      el('h2', { text: TOP.title }),
      el('p', { class: 'note', id: 'top-note', text: TOP.note }),
      el('table', { class: 'legend' },
        el('thead', {}, el('tr', {}, el('th', { text: '#' }), el('th', { text: 'conversation' }), el('th', { class: 'num', text: 'messages' }))),
        el('tbody', { id: 'top-rows' }))));
  }

  function range() {
    const span = SPANS[$('#window').value];
    const end = Math.floor(Date.now() / span.ms) * span.ms + span.ms;
    const from = end - span.count * span.ms;
    const xs = [];
    for (let t = from; t < end; t += span.ms) xs.push(t);
    return { window: $('#window').value, from, to: end, xs };
  }

  async function series(metric, r) {
    const q = new URLSearchParams({ metric, window: r.window, from: String(r.from), to: String(r.to) });
    // A request that hangs must not stop the refreshes: it is given up after a while and the next refresh tries again.
    const res = await fetch(`/v1/analytics/series?${q}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (res.status === 401) throw Object.assign(new Error('signed out'), { signedOut: true });
    const answer = await res.json();
    if (!res.ok) throw new Error(answer.error ? answer.error.message : `HTTP ${res.status}`);
    return answer.points;
  }

  const matches = (point, labels) => Object.entries(labels || {}).every(([k, v]) => point.labels && point.labels[k] === v);

  function draw(entry, points, r) {
    const { panel, chart } = entry;
    const ys = panel.series.map((s) => {
      const byStart = new Map();
      for (const p of points.get(s.metric)) if (matches(p, s.labels)) byStart.set(p.windowStart, p.value);
      return r.xs.map((x) => (byStart.has(x) ? byStart.get(x) : panel.zero ? 0 : null));
    });
    const data = [r.xs.map((x) => x / 1000), ...ys];
    if (!entry.plot) {
      entry.plot = new uPlot({
        width: Math.max(300, chart.clientWidth),
        height: 220,
        legend: { show: false },
        scales: { x: { time: true } },
        axes: [{}, { size: 56 }],
        // Gappy series (percentiles) always show their points: a lone window has no line to draw.
        series: [{}, ...panel.series.map((s, i) => ({ label: s.name, stroke: COLORS[i], width: 2, points: panel.zero ? { size: 5 } : { show: true, size: 6, fill: COLORS[i] } }))],
      }, data, chart);
    } else entry.plot.setData(data);
    // Legend: the latest window that has rows of the metric, and the range total (or max).
    panel.series.forEach((s, i) => {
      const own = points.get(s.metric);
      const latestStart = own.length ? Math.max(...own.map((p) => p.windowStart)) : null;
      const at = latestStart === null ? null : own.find((p) => p.windowStart === latestStart && matches(p, s.labels));
      const latest = at ? at.value : latestStart === null ? null : panel.zero ? 0 : null;
      const values = ys[i].filter((v) => v !== null);
      const total = values.length === 0 ? null : panel.range === 'sum' ? values.reduce((a, b) => a + b, 0) : Math.max(...values);
      const sel = `td[data-metric="${s.metric}"][data-labels="${labelText(s.labels)}"]`;
      const latestCell = chart.parentElement.querySelector(`${sel}.latest`);
      const rangeCell = chart.parentElement.querySelector(`${sel}.range`);
      latestCell.textContent = fmt(latest);
      latestCell.dataset.latest = latest === null ? '' : String(latest);
      latestCell.dataset.windowStart = latestStart === null ? '' : String(latestStart);
      rangeCell.textContent = fmt(total);
      rangeCell.dataset.range = total === null ? '' : String(total);
    });
  }

  function drawTop(points) {
    const latestStart = points.length ? Math.max(...points.map((p) => p.windowStart)) : null;
    const rows = points.filter((p) => p.windowStart === latestStart).sort((a, b) => Number(a.labels.rank) - Number(b.labels.rank));
    $('#top-rows').replaceChildren(...rows.map((p) =>
      el('tr', { dataset: { conversation: p.labels.conversation, rank: p.labels.rank, count: String(p.value) } },
        el('td', { text: p.labels.rank }), el('td', { text: p.labels.conversation }), el('td', { class: 'num', text: String(p.value) }))));
    $('#top-note').textContent = latestStart === null ? TOP.note : `${TOP.note}: ${new Date(latestStart).toLocaleTimeString()}`;
  }

  async function refresh() {
    clearTimeout(timer);
    if (!token) return;
    const r = range();
    const wanted = new Set([...PANELS.flatMap((p) => p.series.map((s) => s.metric)), TOP.metric]);
    try {
      const fetched = await Promise.all([...wanted].map(async (m) => [m, await series(m, r)]));
      const points = new Map(fetched);
      for (const entry of charts.values()) draw(entry, points, r);
      drawTop(points.get(TOP.metric));
      refreshes++;
      body.dataset.refreshes = String(refreshes);
      body.dataset.updated = String(Date.now());
      $('#status').textContent = `updated ${new Date().toLocaleTimeString()} · every ${refreshMs / 1000} s`;
    } catch (err) {
      if (err.signedOut) return showLogin('your session ended; sign in again');
      failures++;
      body.dataset.failures = String(failures);
      $('#status').textContent = `error: ${err.message}`;
    }
    timer = setTimeout(refresh, refreshMs);
  }

  function start() {
    $('#login').hidden = true;
    $('#panels').hidden = false;
    $('#signout').hidden = false;
    build();
    refresh();
  }

  window.addEventListener('resize', () => {
    for (const { plot, chart } of charts.values()) if (plot) plot.setSize({ width: Math.max(300, chart.clientWidth), height: 220 });
  });

  if (token) start();
  else showLogin();
})();
