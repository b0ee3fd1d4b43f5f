/* Trial page behaviour: time from image display (performance.now), keyboard answers, preload, one submit only.
   The server stays authoritative: everything here is a convenience the POST handler re-checks. */
(function () {
  "use strict";
  var form = document.getElementById("trial-form");
  if (!form) { return; }
  var img = document.getElementById("stimulus");
  var button = document.getElementById("next-button");
  var message = form.querySelector(".form-message");
  var fieldsets = Array.prototype.slice.call(form.querySelectorAll("fieldset.dimension"));
  var answered = {};
  var shownAt = null;
  var submitting = false;

  function markShown() {
    if (shownAt !== null) { return; }
    img.classList.add("shown");
    // Wait one frame so the time origin is when the image is painted, not merely decoded.
    requestAnimationFrame(function () { shownAt = performance.now(); });
  }
  if (img.complete && img.naturalWidth) { markShown(); }
  img.addEventListener("load", markShown);
  var imageFailed = false;
  img.addEventListener("error", function () {
    // Never collect a rating of an image nobody saw: block the answer and ask for a reload.
    imageFailed = true;
    message.textContent = form.dataset.msgImageFailed;
    button.disabled = true;
  });

  if (form.dataset.next) { var preload = new Image(); preload.src = form.dataset.next; }

  function elapsed() { return shownAt === null ? "" : String(Math.round(performance.now() - shownAt)); }
  function name(fs) { return fs.dataset.dimension; }
  function allAnswered() { return fieldsets.every(function (fs) { return answered[name(fs)]; }); }
  function refresh() {
    button.disabled = imageFailed || !allAnswered();
    if (allAnswered()) { message.textContent = ""; }
  }
  function record(fs) {
    answered[name(fs)] = true;
    form.querySelector('input[name="rt_ms_' + name(fs) + '"]').value = elapsed();
    var slider = fs.querySelector("input[type=range]");
    if (slider) { slider.classList.remove("untouched"); }
    refresh();
  }
  function active() {
    var focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("fieldset.dimension") : null;
    if (focused) { return focused; }
    for (var i = 0; i < fieldsets.length; i++) { if (!answered[name(fieldsets[i])]) { return fieldsets[i]; } }
    return fieldsets[fieldsets.length - 1];
  }
  fieldsets.forEach(function (fs) {
    fs.addEventListener("change", function () { record(fs); });
    fs.addEventListener("input", function () { record(fs); });
  });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var fs = active();
    if (!fs) { return; }
    if (/^[0-9]$/.test(event.key) && fs.dataset.kind === "likert") {
      var radio = fs.querySelector('input[type=radio][value="' + event.key + '"]');
      if (radio) {
        event.preventDefault();
        radio.checked = true;
        record(fs);
        // Focus follows the answer: the next unanswered question's first visible control, else the Next button
        // (never a hidden input, which would swallow the next key press).
        var next = null;
        for (var i = 0; i < fieldsets.length; i++) { if (!answered[name(fieldsets[i])]) { next = fieldsets[i]; break; } }
        var target = next ? next.querySelector("input[type=radio], input[type=range]") : button;
        (target && !target.disabled ? target : radio).focus();
      }
      return;
    }
    var slider = fs.querySelector("input[type=range]");
    var moves = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -10, PageUp: 10,
                  Home: -1000, End: 1000 };
    if (slider && moves[event.key] !== undefined && document.activeElement !== slider) {
      // A focused slider moves natively; otherwise bring the keys to the active slider.
      event.preventDefault();
      slider.focus();
      var value = Number(slider.value) + moves[event.key];
      slider.value = String(Math.min(Number(slider.max), Math.max(Number(slider.min), value)));
      record(fs);
      return;
    }
    if (event.key === "Enter") {
      event.preventDefault();
      if (slider && document.activeElement === slider && !answered[name(fs)]) { record(fs); }
      if (imageFailed) { return; }
      if (allAnswered()) { form.requestSubmit ? form.requestSubmit() : form.submit(); }
      else { message.textContent = form.dataset.msgUnanswered; }
    }
  });

  form.addEventListener("submit", function (event) {
    if (submitting || imageFailed || !allAnswered()) {
      event.preventDefault();
      if (!submitting && !imageFailed) { message.textContent = form.dataset.msgUnanswered; }
      return;
    }
    submitting = true;
    form.querySelector('input[name="rt_ms"]').value = elapsed();
    button.disabled = true;
  });
  // Coming back through the browser's page cache must not leave a dead, already-submitted form.
  window.addEventListener("pageshow", function (event) { if (event.persisted) { window.location.reload(); } });
  refresh();
})();
