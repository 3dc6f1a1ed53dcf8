// Coverage against the requirement per 15 minutes (console schedule page), with the shortfall as
// bars. Figures from the canvas's data-chart attribute; the tables below hold the same numbers.
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("schedule-chart");
    if (!canvas || !window.Chart) return;
    var data = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      data: {
        labels: data.labels,
        datasets: [
          { type: "bar", label: "Shortfall", data: data.shortfall, backgroundColor: "rgba(185, 28, 28, 0.6)" },
          { type: "line", label: "Required", data: data.required, borderColor: "#1d4ed8", pointRadius: 0, stepped: true },
          { type: "line", label: "Scheduled on the phones", data: data.scheduled, borderColor: "#15803d", pointRadius: 0, stepped: true },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: { x: { ticks: { maxTicksLimit: 14, autoSkip: true } }, y: { min: 0, title: { display: true, text: "Agents" } } },
      },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
