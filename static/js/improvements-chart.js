// Follow-ups raised and grouped, and improvement items open, per week (console improvements page).
// The figures come from the canvas's data-chart attribute; the table below holds the same numbers.
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("improvements-chart");
    if (!canvas || !window.Chart) return;
    var data = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.weeks,
        datasets: [
          { label: "Follow-ups raised", data: data.raised, backgroundColor: "#1d4ed8" },
          { label: "Grouped into items", data: data.grouped, backgroundColor: "#15803d" },
          { label: "Items open", data: data.open_items, type: "line", borderColor: "#b45309", tension: 0.2 },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
