/* Attribute search: "Add a row" copies the last criterion row, emptied. No inline script: the
   page's Content-Security-Policy allows scripts from this origin's static files only. */
(function () {
  "use strict";

  function init() {
    var button = document.getElementById("attribute-add-row");
    var rows = document.getElementById("attribute-rows");
    if (!button || !rows) {
      return;
    }
    button.addEventListener("click", function () {
      var last = rows.querySelector(".attribute-row:last-child");
      var row = last.cloneNode(true);
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      row.querySelector("select").selectedIndex = 0;
      rows.appendChild(row);
      row.querySelector("input").focus();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
