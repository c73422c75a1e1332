// The inbox's reply box: choosing a saved reply puts its text in the box at once (without script,
// the "Use" button reloads the page with it).
(function () {
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
