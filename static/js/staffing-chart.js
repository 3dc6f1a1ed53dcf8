// Service level and occupancy against agents (console staffing page). The figures come from the
// canvas's data-chart attribute; the table beside it holds the same numbers for screen readers.
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("staffing-chart");
    if (!canvas || !window.Chart) return;
    var data = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.agents,
        datasets: [
          { label: "Service level %", data: data.service_level, borderColor: "#1d4ed8", tension: 0.2 },
          { label: "Occupancy %", data: data.occupancy, borderColor: "#b45309", tension: 0.2 },
          {
            label: "Target %",
            data: data.agents.map(function () { return data.target; }),
            borderColor: "#15803d",
            borderDash: [6, 4],
            pointRadius: 0,
          },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: "Agents on the phones" } },
          y: { min: 0, max: 100, title: { display: true, text: "%" } },
        },
      },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
