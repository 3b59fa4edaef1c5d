// Applies the remembered theme before the page paints (loaded synchronously in <head>, so a dark
// theme never flashes light). The choice lives in localStorage; without one, the system's.
(function () {
  var stored = null;
  try { stored = localStorage.getItem("mcpgw-theme"); } catch (e) { /* storage disabled */ }
  var dark = stored ? stored === "dark"
    : window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
})();
