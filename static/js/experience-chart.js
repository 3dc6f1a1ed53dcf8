// Experience dashboard charts (console): the trend per day and CSAT beside agents' EX per group.
// The figures come from each canvas's data-chart attribute; the tables below hold the same numbers.
// EX hidden for a small group is null: Chart.js leaves a gap, never a zero.
(function () {
  "use strict";
  function trend() {
    var canvas = document.getElementById("experience-trend");
    if (!canvas) return;
    var d = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: d.days,
        datasets: [
          { label: "CSAT (1-5)", data: d.csat, borderColor: "#1d4ed8", yAxisID: "score", spanGaps: true },
          { label: "CES (1-7)", data: d.ces, borderColor: "#7c3aed", yAxisID: "score", spanGaps: true },
          { label: "Agents' pulse (1-5)", data: d.pulse, borderColor: "#b45309", yAxisID: "score", spanGaps: true },
          { label: "Agents' energy (1-5)", data: d.energy, borderColor: "#15803d", yAxisID: "score", spanGaps: true, borderDash: [6, 4] },
          { label: "NPS", data: d.nps, borderColor: "#be123c", yAxisID: "pct", spanGaps: true },
          { label: "Service level %", data: d.service_level, borderColor: "#475569", yAxisID: "pct", spanGaps: true, borderDash: [2, 3] },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          score: { position: "left", min: 1, max: 7, title: { display: true, text: "score" } },
          pct: { position: "right", min: -100, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "NPS / %" } },
        },
      },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  function groups() {
    var canvas = document.getElementById("experience-groups");
    if (!canvas) return;
    var d = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: d.labels,
        datasets: [
          { label: "CSAT (1-5)", data: d.csat, backgroundColor: "#1d4ed8" },
          { label: "Agents' pulse (1-5)", data: d.pulse, backgroundColor: "#b45309" },
          { label: "Agents' energy (1-5)", data: d.energy, backgroundColor: "#15803d" },
        ],
      },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 5 } } },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  function draw() {
    if (!window.Chart) return;
    trend();
    groups();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
