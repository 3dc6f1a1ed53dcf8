// Contacts per interval (the model's, and after supervisors' overrides) and agents to schedule
// (console forecast page). Figures from the canvas's data-chart attribute; the table below holds
// the same numbers for keyboard and screen-reader users.
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("forecast-chart");
    if (!canvas || !window.Chart) return;
    var data = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      data: {
        labels: data.labels,
        datasets: [
          {
            type: "bar",
            label: "Agents to schedule",
            data: data.agents,
            backgroundColor: "rgba(21, 128, 61, 0.35)",
            yAxisID: "agents",
          },
          {
            type: "line",
            label: "Forecast contacts",
            data: data.forecast,
            borderColor: "#1d4ed8",
            pointRadius: 0,
            tension: 0.2,
            yAxisID: "contacts",
          },
          {
            type: "line",
            label: "Planned contacts (with overrides)",
            data: data.contacts,
            borderColor: "#b45309",
            borderDash: [6, 4],
            pointRadius: data.overridden.map(function (o) { return o ? 4 : 0; }),
            tension: 0.2,
            yAxisID: "contacts",
          },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { maxTicksLimit: 14, autoSkip: true } },
          contacts: { position: "left", min: 0, title: { display: true, text: "Contacts per interval" } },
          agents: {
            position: "right",
            min: 0,
            grid: { drawOnChartArea: false },
            title: { display: true, text: "Agents" },
          },
        },
      },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
