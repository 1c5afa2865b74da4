/* Message editor: re-renders the preview pane as the operator types (debounced POST of the form
   to the preview URL) and shows Cognito's rule violations next to each field. No inline script:
   the page's Content-Security-Policy allows scripts from this origin's static files only. */
(function () {
  "use strict";

  function init() {
    var configNode = document.getElementById("messages-editor-config");
    var form = document.getElementById("messages-form");
    var target = document.getElementById("messages-preview");
    var status = document.getElementById("messages-preview-status");
    if (!configNode || !form || !target) {
      return;
    }
    var config = JSON.parse(configNode.textContent);
    var timer = null;
    var sequence = 0;

    function codePoints(text) {
      return Array.from(text).length; // Cognito counts characters, not UTF-16 units
    }

    function updateCounts() {
      Object.keys(config.maxLengths).forEach(function (name) {
        var field = form.elements.namedItem(name);
        var counter = document.getElementById("count-" + name);
        if (!field || !counter) {
          return;
        }
        var length = codePoints(field.value.replace(/\r\n/g, "\n"));
        counter.textContent = length.toLocaleString() + " / " + config.maxLengths[name].toLocaleString();
        counter.classList.toggle("over", length > config.maxLengths[name]);
      });
    }

    function showErrors(errors) {
      document.querySelectorAll(".messages-errors").forEach(function (box) {
        var list = errors[box.dataset.field] || [];
        box.textContent = "";
        if (!list.length) {
          return;
        }
        var ul = document.createElement("ul");
        ul.className = "errorlist";
        list.forEach(function (message) {
          var li = document.createElement("li");
          li.textContent = message;
          ul.appendChild(li);
        });
        box.appendChild(ul);
      });
    }

    function refresh() {
      var mine = ++sequence;
      if (status) {
        status.textContent = "updating…";
      }
      fetch(config.previewUrl, {
        method: "POST",
        body: new FormData(form), // carries csrfmiddlewaretoken
        credentials: "same-origin",
        headers: { "X-Requested-With": "XMLHttpRequest" },
      })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          if (mine !== sequence) {
            return; // an older answer arriving late
          }
          target.innerHTML = html;
          var state = document.getElementById("messages-preview-state");
          showErrors(state ? JSON.parse(state.textContent).errors : {});
          if (status) {
            status.textContent = "";
          }
          target.dispatchEvent(new CustomEvent("messages:preview-updated", { bubbles: true }));
        })
        .catch(function (error) {
          if (status && mine === sequence) {
            status.textContent = "preview unavailable (" + error.message + ")";
          }
        });
    }

    function schedule() {
      updateCounts();
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, config.debounceMs);
    }

    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    updateCounts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
