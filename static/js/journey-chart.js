// The journey funnel (console journeys page). The figures come from the canvas's data-chart
// attribute; the table beside it holds the same numbers for screen readers.
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("journey-funnel-chart");
    if (!canvas || !window.Chart) return;
    var data = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: "Journeys", data: data.values, backgroundColor: ["#1d4ed8", "#0e7490", "#15803d", "#b45309"] }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
