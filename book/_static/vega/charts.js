// Draws every interactive chart of the page with the book's own copies of Vega,
// Vega-Lite and vega-embed (loaded before this file): nothing is fetched off the site.
// Each chart is a <div class="mfkit-chart"> holding its Vega-Lite spec as JSON in a
// <script type="application/json"> (book/_ext/vega_charts.py writes them). The chart
// is drawn as SVG (crisp when printed); a chart that cannot be drawn says so in place.
(function () {
  "use strict";
  function drawAll() {
    document.querySelectorAll("div.mfkit-chart").forEach(function (box) {
      if (box.dataset.drawn) return;
      box.dataset.drawn = "pending";
      var data = box.querySelector('script[type="application/json"]');
      var target = box.querySelector(".mfkit-chart-view");
      try {
        var spec = JSON.parse(data.textContent);
        var options = {
          mode: "vega-lite",
          renderer: "svg",
          // Save as SVG/PNG; no links to the online Vega editor (off the site).
          actions: { export: true, source: false, compiled: false, editor: false },
        };
        vegaEmbed(target, spec, options).then(
          function () { box.dataset.drawn = "yes"; },
          function (error) { fail(box, target, error); }
        );
      } catch (error) {
        fail(box, target, error);
      }
    });
  }
  function fail(box, target, error) {
    box.dataset.drawn = "failed";
    target.textContent = "This interactive chart could not be drawn: " + error;
    console.error(error);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
