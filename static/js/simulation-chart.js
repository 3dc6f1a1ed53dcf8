// Service level per interval for each side (console what-if simulation page). The figures come
// from the canvas's data-chart attribute (the results fragment htmx swaps in); the table beside
// it holds the same numbers for screen readers.
(function () {
  "use strict";
  var colours = ["#1d4ed8", "#b45309"];
  function draw() {
    var canvas = document.getElementById("simulation-chart");
    if (!canvas || !window.Chart || canvas.getAttribute("data-drawn")) return;
    var data = JSON.parse(canvas.getAttribute("data-chart"));
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: data.series.map(function (s, i) {
          return { label: s.label + " service level %", data: s.service_level, borderColor: colours[i % 2], tension: 0.2 };
        }),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: "Interval start" } },
          y: { min: 0, max: 100, title: { display: true, text: "%" } },
        },
      },
    });
    canvas.setAttribute("data-drawn", "true");
  }
  document.addEventListener("htmx:afterSettle", draw);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
