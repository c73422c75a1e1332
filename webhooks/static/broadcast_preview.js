// Broadcast compose page: refresh the preview a moment after staff stop typing (progressive
// enhancement; the "Preview" button does the same without JavaScript). It posts the form as the
// button would (action=preview, with the CSRF token) and swaps in the server's rendered preview, so
// counts, segments and texts come from the same service function. No inline script: the CSP forbids it.
(function () {
  "use strict";
  // A form marked data-once (the "Send" confirmation) submits once: a double click sends one request.
  // (The server also refuses the same broadcast from the same sender twice within 10 minutes.)
  document.querySelectorAll("form[data-once]").forEach(function (f) {
    f.addEventListener("submit", function (event) {
      if (f.dataset.sent) event.preventDefault();
      f.dataset.sent = "1";
    });
  });
  var form = document.getElementById("compose");
  var area = document.getElementById("live-preview");
  if (!form || !area || !window.fetch || !window.DOMParser) return;
  var timer = null, inflight = null, last = "";

  function body() {
    var data = new FormData(form);
    data.set("action", "preview");
    return data;
  }

  function key(data) {
    var parts = [];
    data.forEach(function (v, k) { if (k !== "csrf_token") parts.push(k + "=" + v); });
    return parts.join("&");
  }

  function showError(text) {
    var p = document.createElement("p");
    p.className = "alert";
    p.setAttribute("role", "alert");
    p.textContent = text;
    area.replaceChildren(p);
  }

  function refresh() {
    var data = body();
    if (!String(data.get("message_en") || "").trim()) return;
    var k = key(data);
    if (k === last) return;
    last = k;
    if (inflight) inflight.abort();
    inflight = new AbortController();
    area.setAttribute("aria-busy", "true");
    // getAttribute: a button named "action" shadows form.action
    fetch(form.getAttribute("action").split("#")[0], {method: "POST", body: data, credentials: "same-origin",
                                      signal: inflight.signal, headers: {"X-Requested-With": "fetch"}})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live-preview");
        var error = doc.querySelector(".alert");
        if (error) showError(error.textContent.trim());
        else if (fresh) area.replaceChildren.apply(area, Array.prototype.slice.call(fresh.childNodes));
      })
      .catch(function (e) { if (e.name !== "AbortError") last = ""; })
      .finally(function () { area.removeAttribute("aria-busy"); });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 600);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
