/* A stimulus set's build state on its admin page, refreshed from its JSON endpoint until it is done or failed. */
function followBuildState() {
  "use strict";
  var box = document.querySelector("[data-build-state-url]");
  if (!box) { return; }
  var text = box.querySelector("[data-build-text]");
  var bar = box.querySelector("progress");
  var finished = { done: true, failed: true, imported: true, "": true };
  function show(state) {
    box.dataset.buildState = state.state;
    var words = state.state || "made by a command";
    if (state.total) { words += " · " + state.done + " of " + state.total + " images"; }
    if (state.error) { words += " · " + state.error; }
    text.textContent = words;
    if (bar) { bar.max = state.total || 1; bar.value = state.done; }
  }
  function poll() {
    fetch(box.dataset.buildStateUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (state) {
        show(state);
        if (!finished[state.state]) { window.setTimeout(poll, 1500); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  if (!finished[box.dataset.buildState]) { window.setTimeout(poll, 1000); }
}
// The admin loads form media in <head>, before the page body exists.
document.addEventListener("DOMContentLoaded", followBuildState);
