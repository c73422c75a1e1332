(function () {
  "use strict";
  var log = document.getElementById("log");
  var form = document.getElementById("compose");
  var input = document.getElementById("text");
  var address = document.getElementById("address");
  var language = document.getElementById("language");
  var errorBox = document.getElementById("error");
  var csrfMeta = document.querySelector("meta[name=csrf-token]");
  var csrfToken = csrfMeta ? csrfMeta.content : "";  // Flask-WTF checks it on every POST

  function channel() { return document.querySelector("input[name=channel]:checked").value; }

  function bubble(text, who, html) {
    var div = document.createElement("div");
    div.className = "bubble " + who;
    if (html) {
      // Telegram replies are HTML the server escaped; allow only <b>, <i>, <a> from it.
      var tpl = document.createElement("template");
      tpl.innerHTML = text;
      tpl.content.querySelectorAll("*").forEach(function (el) {
        if (["B", "I", "A", "STRONG", "EM"].indexOf(el.tagName) < 0) { el.replaceWith(el.textContent); }
      });
      div.appendChild(tpl.content);
    } else {
      div.textContent = text;
    }
    append(div);
    return div;
  }

  // The newest line of the chat stays in sight: the pane scrolls to its end (buttons included).
  function append(el) {
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    if (el.scrollIntoView) { el.scrollIntoView({block: "nearest"}); }
  }

  function note(text) {
    var p = document.createElement("p");
    p.className = "note";
    p.textContent = text;
    append(p);
  }

  function buttons(list) {
    if (!list || !list.length) return;
    var row = document.createElement("div");
    row.className = "buttons";
    list.forEach(function (b) {
      var btn = document.createElement("button");
      btn.type = "button";
      btn.textContent = b.text;
      btn.addEventListener("click", function () { send(b.data || b.text, b.text, b); });
      row.appendChild(btn);
    });
    append(row);
  }

  function send(text, shown, button) {
    errorBox.textContent = "";
    bubble(shown || text, "me", false);
    var body = {channel: channel(), address: address.value.trim(), text: text, language: language.value};
    if (button) { body.button = button.data || button.text; }
    fetch(form.dataset.url || "send", {
      method: "POST", headers: {"Content-Type": "application/json", "X-Requested-With": "fetch",
                               "X-CSRFToken": csrfToken},
      body: JSON.stringify(body), credentials: "same-origin"
    }).then(function (r) {
      return r.json().then(function (j) { return {ok: r.ok, data: j}; });
    }).then(function (res) {
      if (!res.ok) { errorBox.textContent = res.data.error || "Something went wrong"; return; }
      (res.data.messages || []).forEach(function (m) { bubble(m, "bot", res.data.html); });
      buttons(res.data.buttons);
      if (res.data.note) { note(res.data.note); }
    }).catch(function () { errorBox.textContent = "The server did not answer."; });
  }

  form.dataset.url = window.location.pathname.replace(/\/$/, "") + "/send";
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    input.value = "";
    send(text);
    input.focus();
  });
  document.getElementById("new-person").addEventListener("click", function () {
    address.value = "+1555" + String(Math.floor(1000000 + Math.random() * 8999999));
    log.innerHTML = "";
    input.focus();
  });
  // Each channel's radio says what its members type first and whether their app tells their language.
  function chosen() { return document.querySelector("input[name=channel]:checked"); }
  function applyChannel() {
    document.body.classList.toggle("app-language", chosen().dataset.appLanguage === "1");
    input.placeholder = chosen().dataset.placeholder;
  }
  document.querySelectorAll("input[name=channel]").forEach(function (r) {
    r.addEventListener("change", function () { applyChannel(); log.innerHTML = ""; });
  });
  applyChannel();
})();
