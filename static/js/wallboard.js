// The console home's charts (issue #11 item 1): arrivals, service level and peak waiting per
// 15 minutes. The figures ride in each wallboard push (#wallboard-chart-data inside #floor, which
// the websocket swaps); the charts live outside it and are updated in place, without animation.
(function () {
  "use strict";
  var charts = {};

  function figures() {
    var holder = document.getElementById("wallboard-chart-data");
    return holder ? JSON.parse(holder.getAttribute("data-chart")) : null;
  }

  function make(id, type, label, colour, yMax) {
    var canvas = document.getElementById(id);
    if (!canvas) return null;
    var scales = { y: { beginAtZero: true, title: { display: true, text: label } } };
    if (yMax) scales.y.max = yMax;
    return new window.Chart(canvas, {
      type: type,
      data: { labels: [], datasets: [{ label: label, data: [], borderColor: colour, backgroundColor: colour, spanGaps: true }] },
      options: { animation: false, maintainAspectRatio: false, scales: scales },
    });
  }

  function draw() {
    var data = figures();
    if (!data || !window.Chart) return;
    if (!charts.arrivals) {
      charts.arrivals = make("chart-arrivals", "bar", "Arrivals", "#1d4ed8");
      charts.service_level = make("chart-service-level", "line", "Service level %", "#15803d", 100);
      charts.waiting = make("chart-waiting", "line", "Peak waiting", "#b45309");
    }
    ["arrivals", "service_level", "waiting"].forEach(function (name) {
      var chart = charts[name];
      if (!chart) return;
      chart.data.labels = data.labels;
      chart.data.datasets[0].data = data[name];
      chart.update("none");
      // What tests and screen-reader users can read: the latest figures, as text.
      chart.canvas.setAttribute("data-series", JSON.stringify(data[name]));
      chart.canvas.setAttribute("data-drawn-at", String(Date.now()));
    });
  }

  document.addEventListener("htmx:wsAfterMessage", draw);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
