// Swagger UI for /docs (switchboard/api_docs.py): the bundle is served from /static/vendor.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    // The default would ask validator.swagger.io (a remote host) for a badge.
    validatorUrl: null,
  });
});
