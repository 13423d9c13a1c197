// The dashboard's live behaviour: an SVG chart of equity/balance with drawdown below, drawn from
// GET equity/, and the panels re-fetched from the server whenever the event stream reports a change.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  const svg = document.getElementById("chart");
  const live = document.getElementById("live");
  const RANGES = { "6h": ["5m", 6], "1d": ["5m", 24], "7d": ["1h", 168], "30d": ["1d", 720] };
  let range = "1d";
  let timer = null;
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }

  function path(points, x, y) {
    return points.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1)).join(" ");
  }

  async function drawChart() {
    const [interval, hours] = RANGES[range];
    const to = new Date(Date.now() + 60000);
    const from = new Date(to - hours * 3600 * 1000);
    const url = root.dataset.equity + "?interval=" + interval + "&from=" + encodeURIComponent(from.toISOString()) +
      "&to=" + encodeURIComponent(to.toISOString());
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const points = (await response.json()).points;
    svg.replaceChildren();
    if (!points.length) {
      svg.append(el("text", { x: 400, y: 150, "text-anchor": "middle", class: "empty" }));
      svg.lastChild.textContent = "No equity snapshot in this range.";
      return;
    }
    const W = 800, top = 10, mid = 200, bottom = 290, left = 60;
    const t = points.map((p) => Date.parse(p.time));
    const eq = points.map((p) => +p.equity), bal = points.map((p) => +p.balance), dd = points.map((p) => +p.drawdown_pct);
    const lo = Math.min(...eq, ...bal), hi = Math.max(...eq, ...bal), span = hi - lo || 1;
    const t0 = t[0], t1 = t[t.length - 1], tspan = t1 - t0 || 1, ddMax = Math.max(...dd, 1);
    const x = (v) => left + ((v - t0) / tspan) * (W - left - 10);
    const y = (v) => mid - 10 - ((v - lo) / span) * (mid - 20 - top);
    const yd = (v) => mid + 10 + (v / ddMax) * (bottom - mid - 10);
    const series = (values) => values.map((v, i) => ({ t: t[i], v }));
    svg.append(el("path", { d: path(series(bal), x, y), class: "balance" }));
    svg.append(el("path", { d: path(series(eq), x, y), class: "equity" }));
    const ddLine = path(series(dd), x, yd);
    svg.append(el("path", { d: ddLine + " L" + x(t1) + " " + yd(0) + " L" + x(t0) + " " + yd(0) + " Z", class: "dd" }));
    for (const [value, yy] of [[hi, y(hi)], [lo, y(lo)], [ddMax, yd(ddMax)]]) {
      const label = el("text", { x: 4, y: yy + 4, class: "axis" });
      label.textContent = value === ddMax ? "-" + value.toFixed(1) + "%" : value.toFixed(2);
      svg.append(label);
    }
    svg.dataset.points = String(points.length);
  }

  async function refresh() {
    const response = await fetch("?fragment=panels", { credentials: "same-origin" });
    if (response.ok) document.getElementById("panels").innerHTML = await response.text();
    await drawChart();
  }

  function connect() {
    const source = new EventSource(root.dataset.stream + "?last_event_id=" + root.dataset.lastEventId);
    source.onopen = () => { live.textContent = "live"; live.className = "badge on"; };
    source.onerror = () => { live.textContent = "reconnecting…"; live.className = "badge"; };
    source.onmessage = (message) => {
      root.dataset.lastEventId = message.lastEventId;
      clearTimeout(timer);
      timer = setTimeout(refresh, 150); // one refresh for a burst (a sync writes several rows at once)
    };
  }

  for (const button of document.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => {
      range = button.dataset.range;
      document.querySelectorAll("[data-range]").forEach((b) => b.classList.toggle("on", b === button));
      drawChart();
    });
  }
  drawChart();
  connect();
})();
