/* Copy buttons: a button with data-copy="<element id>" copies that element's text to the clipboard
   (the Clipboard API where the page is a secure context, else a selection and execCommand). */
(function () {
  "use strict";

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  function flash(button, message) {
    var note = button.nextElementSibling;
    if (!note || !note.classList.contains("copied")) {
      note = document.createElement("span");
      note.className = "copied";
      note.setAttribute("role", "status");
      button.insertAdjacentElement("afterend", note);
    }
    note.textContent = message;
    window.setTimeout(function () {
      note.textContent = "";
    }, 2000);
  }

  function init() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var source = document.getElementById(button.dataset.copy);
        if (!source) {
          return;
        }
        copy(source.textContent).then(
          function () {
            flash(button, "Copied");
          },
          function () {
            flash(button, "Select and copy by hand");
          }
        );
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
