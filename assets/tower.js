/* Client-side callbacks of the shell (widgets/shell.py). Served locally by Dash. */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  tower: {
    /* Theme and language on <html>, from the URL: ?theme=dark|light, ?lang=, ?kiosk=1. */
    applyView: function (search, config) {
      var params = new URLSearchParams(search || "");
      var kiosk = ["1", "true", "yes", "on"].indexOf((params.get("kiosk") || "").toLowerCase()) >= 0;
      var theme = params.get("theme");
      if (theme !== "light" && theme !== "dark") { theme = kiosk ? "dark" : "light"; }
      var lang = (params.get("lang") || (config && config.default_lang) || "en").toLowerCase();
      lang = lang.indexOf("zh") === 0 ? "zh-CN" : "en";
      var root = document.documentElement;
      root.setAttribute("data-bs-theme", theme);
      root.setAttribute("lang", lang);
      root.classList.toggle("tower-kiosk", kiosk);
      return theme + " " + lang + (kiosk ? " kiosk" : "");
    },

    /* The freshness line and the STALE banner. The server says how old the newest
       event is; when the server itself stops answering for config.unreachable_ms the
       banner goes up here, and comes down with the next answer. */
    showFreshness: function (fresh, nIntervals, config) {
      var self = window.dash_clientside.tower;
      var now = Date.now();
      var triggered = (window.dash_clientside.callback_context.triggered || [])
        .map(function (t) { return t.prop_id; });
      if (fresh && triggered.indexOf("shell-fresh.data") >= 0) { self._lastAnswer = now; }
      if (!self._lastAnswer) { self._lastAnswer = now; }  // first paint: give it time
      var silent = now - self._lastAnswer > ((config && config.unreachable_ms) || 15000);
      if (!fresh) {
        return [window.dash_clientside.no_update, silent ? "STALE" : "", !silent];
      }
      if (silent) { return [fresh.line, fresh.unreachable, false]; }
      return [fresh.line, fresh.banner || "", !fresh.banner];
    },

    /* A rotating wall screen: the next path of the rotation, keeping the query. */
    rotate: function (n, paths, pathname) {
      if (!paths || !paths.length) { return window.dash_clientside.no_update; }
      var i = paths.indexOf(pathname || "/");
      return paths[(i + 1) % paths.length];
    }
  }
});
