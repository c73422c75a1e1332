// The inbox's reply box: choosing a saved reply puts its text in the box at once (without script,
// the "Use" button reloads the page with it).
(function () {
  // one click sends one reply: the button is disabled once the form goes (the server refuses a repeat too)
  var form = document.querySelector("form.reply");
  if (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]:not([form])");
      if (button) { button.disabled = true; button.textContent = "Sending…"; }
    });
  }
  var select = document.getElementById("saved");
  if (!select) return;
  var box = document.getElementById(select.getAttribute("data-target"));
  select.addEventListener("change", function () {
    var option = select.options[select.selectedIndex];
    if (option && option.getAttribute("data-text") !== null) {
      box.value = option.getAttribute("data-text");
      box.focus();
    }
  });
})();
