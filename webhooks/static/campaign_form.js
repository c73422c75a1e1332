// Campaign form: under each SMS summary, its length and SMS segments as staff type, and a problem's
// link focuses its field (progressive enhancement: the server shows the same count after each submit, and refuses a summary that does not
// fit). The GSM-7 alphabet and the look-alike replacements come from the server (config/gsm.py, in the
// form's data-gsm attribute), so the count is the one the server makes. No inline script: the CSP
// forbids it.
(function () {
  "use strict";
  // A problem listed at the top leads to its field: focus it, not only scroll to it.
  document.querySelectorAll("#problems a[href^='#']").forEach(function (link) {
    link.addEventListener("click", function (event) {
      var field = document.getElementById(link.getAttribute("href").slice(1));
      if (!field) return;
      event.preventDefault();
      field.focus();
      field.scrollIntoView({block: "center"});
    });
  });

  var form = document.getElementById("campaign-form");
  if (!form || !form.dataset.gsm) return;
  var gsm = JSON.parse(form.dataset.gsm);
  var basic = new Set(Array.from(gsm.basic));
  var extended = new Set(Array.from(gsm.extended));
  var replacements = gsm.replacements;
  var maxSegments = gsm.max_segments;

  function isGsm(ch) { return basic.has(ch) || extended.has(ch); }

  // config/gsm.py to_gsm: keep GSM-7, replace look-alikes, drop accents where that leaves GSM-7.
  function toGsm(text) {
    return Array.from(text).map(function (ch) {
      if (isGsm(ch)) return ch;
      if (Object.prototype.hasOwnProperty.call(replacements, ch)) return replacements[ch];
      var stripped = ch.normalize("NFKD").replace(/\p{M}/gu, "");
      return stripped && Array.from(stripped).every(function (c) { return basic.has(c); }) ? stripped : ch;
    }).join("");
  }

  // config/gsm.py segments, and webhooks/staff_campaigns.py sms_count for the words.
  function count(text) {
    var sent = toGsm(text.trim());
    var chars = Array.from(sent);
    var gsm7 = chars.every(isGsm);
    var units = 0;
    chars.forEach(function (ch) {
      units += gsm7 ? (extended.has(ch) ? 2 : 1) : (ch.codePointAt(0) > 0xFFFF ? 2 : 1);
    });
    var single = gsm7 ? 160 : 70, multi = gsm7 ? 153 : 67;
    var segments = units <= single ? (units ? 1 : 0) : Math.ceil(units / multi);
    var fits = gsm7 && segments <= maxSegments;
    // Python's len() counts code points, as Array.from does
    var counted = chars.length + " characters · " + segments + " segment" + (segments === 1 ? "" : "s");
    var says;
    if (fits) says = counted + " (GSM-7): fits";
    else if (gsm7) says = counted + " (GSM-7): too long, it must fit " + maxSegments + " segments (306 characters)";
    else says = counted + " (UCS-2: a character is outside the GSM alphabet): it must fit " + maxSegments +
      " GSM-7 segments";
    return {fits: fits, says: says};
  }

  document.querySelectorAll("[data-count-for]").forEach(function (out) {
    var area = document.getElementById(out.dataset.countFor);
    if (!area) return;
    function update() {
      var c = count(area.value);
      out.textContent = c.says;
      out.classList.toggle("ok", c.fits);
      out.classList.toggle("over", !c.fits);
    }
    area.addEventListener("input", update);
  });
})();
