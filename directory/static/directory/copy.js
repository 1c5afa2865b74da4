// Copy buttons (widgets.copy_value): copy data-copy to the clipboard and say so on the button.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest(".directory-copy-button");
  if (!button) return;
  const text = button.dataset.copy || "";
  const done = (label) => {
    button.textContent = label;
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  };
  const fallback = () => {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    done(ok ? "Copied" : "Select and copy");
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => done("Copied"), fallback);
  } else {
    fallback();
  }
});
