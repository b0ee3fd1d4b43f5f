// Study monitor: polls the JSON endpoint and updates the page in place. No inline code anywhere, so the page
// works under the strict Content-Security-Policy the admin view sends; the chart is SVG built with DOM calls.
(function () {
  "use strict";
  var root = document.getElementById("study-monitor");
  if (!root) return;
  var url = root.dataset.url;
  var interval = Number(root.dataset.intervalMs) || 5000;
  var state = root.querySelector("[data-role=state]");
  var SVG = "http://www.w3.org/2000/svg";

  function fmt(key, value) {
    if (value === null || value === undefined) return "–";
    if (key === "completion_rate") return (100 * value).toFixed(1) + " %";
    if (key === "median_duration_s") {
      var minutes = Math.floor(value / 60);
      return (minutes ? minutes + " min " : "") + Math.round(value - 60 * minutes) + " s";
    }
    if (key === "generated_at") return new Date(value).toLocaleTimeString();
    return String(value);
  }

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    tr.appendChild(td);
  }

  function table(tbody, items, columns, empty) {
    var rows = items.map(function (item) {
      var tr = document.createElement("tr");
      columns.forEach(function (column) { cell(tr, item[column]); });
      return tr;
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = columns.length;
      td.textContent = empty;
      tr.appendChild(td);
      rows.push(tr);
    }
    tbody.replaceChildren.apply(tbody, rows);
  }

  function readiness(box, problems) {
    var nodes = [];
    var p = document.createElement("p");
    if (problems.length) {
      p.textContent = "Not ready to publish:";
      var ul = document.createElement("ul");
      ul.className = "monitor-problems";
      problems.forEach(function (problem) {
        var li = document.createElement("li");
        li.textContent = problem;
        ul.appendChild(li);
      });
      nodes.push(p, ul);
    } else {
      p.textContent = "Ready to publish.";
      p.className = "monitor-ready";
      nodes.push(p);
    }
    box.replaceChildren.apply(box, nodes);
  }

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Bars: completions per bucket; line: the running total (own scale, labelled at the right).
  function chart(svg, completions) {
    var points = completions.points;
    var W = 640, H = 180, left = 36, right = 44, top = 12, bottom = 28;
    var nodes = [];
    if (!points.length) {
      nodes.push(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, "no completions yet"));
      svg.replaceChildren.apply(svg, nodes);
      return;
    }
    var maxN = Math.max.apply(null, points.map(function (p) { return p.n; }));
    var total = points[points.length - 1].cumulative;
    var step = (W - left - right) / points.length;
    var barW = Math.max(1, step * 0.7);
    var y = function (v, max) { return H - bottom - (H - top - bottom) * v / max; };
    nodes.push(el("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: "chart-axis" }));
    var line = [];
    points.forEach(function (p, i) {
      var x = left + i * step + (step - barW) / 2;
      var bar = el("rect", { x: x, y: y(p.n, maxN), width: barW, height: H - bottom - y(p.n, maxN), class: "chart-bar" });
      bar.appendChild(el("title", {}, p.t + ": " + p.n + " (total " + p.cumulative + ")"));
      nodes.push(bar);
      line.push((left + (i + 0.5) * step).toFixed(1) + "," + y(p.cumulative, total).toFixed(1));
    });
    nodes.push(el("polyline", { points: line.join(" "), class: "chart-line" }));
    nodes.push(el("text", { x: left - 4, y: top + 8, "text-anchor": "end", class: "chart-label" }, String(maxN)));
    nodes.push(el("text", { x: W - right + 4, y: top + 8, class: "chart-label chart-total" }, String(total)));
    var first = new Date(points[0].t), last = new Date(points[points.length - 1].t);
    var label = function (d) {
      return completions.bucket === "day" ? d.toLocaleDateString() : d.toLocaleString([], { hour: "2-digit", minute: "2-digit" });
    };
    nodes.push(el("text", { x: left, y: H - 8, class: "chart-label" }, label(first)));
    nodes.push(el("text", { x: W - right, y: H - 8, "text-anchor": "end", class: "chart-label" },
      label(last) + " (per " + completions.bucket + ")"));
    svg.replaceChildren.apply(svg, nodes);
  }

  function render(data) {
    root.querySelectorAll("[data-field]").forEach(function (node) {
      var key = node.dataset.field;
      if (key in data) node.textContent = fmt(key, data[key]);
    });
    root.querySelectorAll("[data-coverage]").forEach(function (node) {
      node.textContent = fmt("", data.coverage[node.dataset.coverage]);
    });
    table(root.querySelector("[data-role=conditions]"), data.conditions, ["condition", "dimension", "ratings", "mean"],
      "no ratings yet");
    table(root.querySelector("[data-role=least-covered]"), data.coverage.least_covered,
      ["stimulus", "condition", "ratings"], "no stimuli");
    root.querySelectorAll("[data-status-button]").forEach(function (button) {
      button.disabled = button.dataset.statusButton === data.status;  // the current status is not a choice
    });
    var box = root.querySelector("[data-role=readiness]");
    if (box && data.readiness_problems) readiness(box, data.readiness_problems);
    chart(root.querySelector("[data-role=chart]"), data.completions);
  }

  function tick() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        render(data);
        state.textContent = "";
        root.dataset.updates = String(Number(root.dataset.updates) + 1);
      })
      .catch(function (error) { state.textContent = "(update failed: " + error.message + "; retrying)"; })
      .then(function () { window.setTimeout(tick, document.hidden ? 4 * interval : interval); });
  }
  tick();
})();
