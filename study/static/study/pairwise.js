/* Pairwise trial: reveal both images together, time from their first painted frame, answer by click or keys
   (←/1 Image 1, →/2 Image 2, 0 no difference when offered), submit once. The server re-checks everything. */
(function () {
  "use strict";
  var form = document.getElementById("pair-form");
  if (!form) { return; }
  var pair = document.getElementById("pair");
  var images = [document.getElementById("stimulus-left"), document.getElementById("stimulus-right")];
  var message = form.querySelector(".form-message");
  var button = document.getElementById("next-button");
  var name = form.dataset.dimension;
  var shownAt = null;
  var failed = false;
  var submitting = false;
  form.classList.add("pair-js");  // a click or key submits at once, so the Next button (no-JS fallback) goes

  function loaded(img) { return img.complete && img.naturalWidth > 0; }
  function reveal() {
    if (shownAt !== null || !images.every(loaded)) { return; }
    pair.classList.add("shown");
    requestAnimationFrame(function () { shownAt = performance.now(); });
  }
  images.forEach(function (img) {
    img.addEventListener("load", reveal);
    img.addEventListener("error", function () {
      // Never record a choice between images the participant did not see.
      failed = true;
      message.textContent = form.dataset.msgImageFailed;
      button.disabled = true;
    });
  });
  reveal();
  document.querySelectorAll('link[rel="preload"][as="image"]').forEach(function (link) {
    var img = new Image(); img.src = link.href;
  });

  function elapsed() { return shownAt === null ? "" : String(Math.round(performance.now() - shownAt)); }
  function choose(side) {
    if (submitting || failed) { return; }
    if (shownAt === null) { message.textContent = form.dataset.msgWait; return; }
    var radio = form.querySelector('input[name="' + name + '"][value="' + side + '"]');
    if (!radio) { return; }
    radio.checked = true;
    var rt = elapsed();
    form.querySelector('input[name="rt_ms_' + name + '"]').value = rt;
    form.querySelector('input[name="rt_ms"]').value = rt;
    submitting = true;
    button.disabled = true;
    form.submit();
  }
  form.querySelectorAll('input[type="radio"]').forEach(function (radio) {
    radio.addEventListener("click", function () { choose(radio.value); });
  });
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var side = { ArrowLeft: "left", "1": "left", ArrowRight: "right", "2": "right", "0": "tie" }[event.key];
    if (side) { event.preventDefault(); choose(side); }
  });
  form.addEventListener("submit", function (event) {
    // The Next button (no click on an image yet): only with a choice, and only once.
    var picked = form.querySelector('input[name="' + name + '"]:checked');
    if (submitting || !picked) {
      event.preventDefault();
      if (!picked) { message.textContent = form.dataset.msgUnanswered; }
      return;
    }
    event.preventDefault();
    choose(picked.value);
  });
  window.addEventListener("pageshow", function (event) { if (event.persisted) { window.location.reload(); } });
})();
