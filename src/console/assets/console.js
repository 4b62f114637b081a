// Strata console: live refresh. The pages are complete without this file;
// with it, elements marked data-live (charts, lag and other tables) are
// replaced every few seconds by their fresh server-rendered version.
(function () {
  "use strict";
  var body = document.body;
  var period = Number(body.getAttribute("data-live-refresh") || 0);
  if (!period || !window.fetch || !window.DOMParser) {
    return;
  }
  period = Math.max(2000, period);
  var status = document.getElementById("live-status");
  var busy = false;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Refresh": "1" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var live = document.querySelectorAll("[data-live][id]");
        for (var i = 0; i < live.length; i++) {
          var fresh = doc.getElementById(live[i].id);
          if (fresh) {
            live[i].replaceWith(document.importNode(fresh, true));
          }
        }
        var now = new Date();
        body.setAttribute("data-refreshed", String(now.getTime()));
        if (status) {
          status.textContent = "updated " + pad(now.getHours()) + ":" + pad(now.getMinutes()) + ":" + pad(now.getSeconds());
        }
      })
      .catch(function (e) {
        if (status) { status.textContent = "refresh failed: " + e.message; }
      })
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, period);
})();
