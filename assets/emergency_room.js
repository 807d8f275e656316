/* The order emergency room (widgets/pages/emergency_room.py), in the browser:
   - countdowns tick every second from each deadline and the tower's clock (its "now"
     and rate come with every refresh: the demo's clock runs 60x the wall clock);
   - buttons and keys set the page's intent store (one delegated click handler);
   - keys: j / k or arrows move between rows, Enter opens the detail, a acknowledges,
     t assigns, s sets the handling step, z snoozes, r resolves, n raises an L3,
     Esc closes the form or the detail. Served locally by Dash. */
(function () {
  "use strict";
  var ROOT = "emergency-room-root";
  var INTENT = "emergency-room-intent";
  var KEYS = { a: "ack", t: "assign", s: "step", z: "snooze", r: "resolve" };
  var clock = null;        // {tower: ms, wall: ms, rate: tower s per wall s, words: {...}}
  var focus = { ex: null, index: 0 };  // the row to keep focused across re-renders

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function clockText(seconds) {
    var s = Math.abs(seconds);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    return h ? h + ":" + pad(m) + ":" + pad(x) : pad(m) + ":" + pad(x);
  }

  function towerNow() {
    return clock ? clock.tower + (Date.now() - clock.wall) * clock.rate : null;
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#emergency-room-queue .er-row"));
  }

  function rowOf(el) { return el && el.closest ? el.closest(".er-row") : null; }

  function remember(row) {
    if (!row) { return; }
    focus.ex = row.getAttribute("data-er-ex");
    focus.index = Math.max(rows().indexOf(row), 0);
  }

  /* After a refresh the focused exception may have moved, or gone (resolved): keep the
     focus on it, or on the row that took its place. Never steal focus from a field. */
  function keepFocus() {
    if (!focus.ex || document.querySelector(".modal.show")) { return; }
    var active = document.activeElement;
    var inRow = rowOf(active);
    if (active && active !== document.body && !inRow) { return; }
    if (inRow && inRow.getAttribute("data-er-ex") === focus.ex) { return; }
    var list = rows();
    if (!list.length) { return; }
    var same = list.filter(function (r) { return r.getAttribute("data-er-ex") === focus.ex; })[0];
    var row = same || list[Math.min(focus.index, list.length - 1)];
    row.focus({ preventScroll: true });
    remember(row);
  }

  function tick() {
    var now = towerNow();
    if (now === null) { keepFocus(); return; }
    var els = document.querySelectorAll("#" + ROOT + " [data-er-deadline]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var left = Math.round((Date.parse(el.getAttribute("data-er-deadline")) - now) / 1000);
      var kind = el.getAttribute("data-er-kind");
      var late = left < 0;
      var word = kind === "update" ? (late ? "update_late" : "update_in") : (late ? "overdue" : "left");
      var text = (clock.words[word] || "{t}").replace("{t}", clockText(left));
      if (el.textContent !== text) { el.textContent = text; }
      el.setAttribute("data-er-late", late ? "1" : "0");
      var row = rowOf(el);
      if (row && kind === "respond") { row.setAttribute("data-er-overdue", late ? "1" : "0"); }
    }
    keepFocus();
  }

  /* --- drawing the queue: plain DOM from the server's row data, keyed by exception;
     a row is rebuilt only when its version changed, and rows already in place stay
     (so the focus stays). Text goes in with textContent, never as HTML. --- */
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  function actionButton(action, ex, q, cls) {
    var b = el("button", cls || ("btn btn-sm " + (action === "ack" ? "btn-primary" : "btn-outline-secondary")),
               q.labels[action]);
    b.type = "button";
    b.title = q.labels[action] + " (" + q.keys[action] + ")";
    b.setAttribute("data-er-action", action);
    b.setAttribute("data-er-ex", ex);
    return b;
  }

  function buildRow(r, q) {
    var row = el("div", "er-row");
    row.tabIndex = 0;
    row.setAttribute("role", "listitem");
    row.setAttribute("data-er-ex", r.id);
    row.setAttribute("data-er-tier", r.tier);
    row.setAttribute("data-er-status", r.status);
    row.setAttribute("data-er-overdue", "0");
    row.setAttribute("data-er-v", r.v);
    row.setAttribute("aria-label", r.title);
    var tier = el("div", "er-tier");
    tier.appendChild(el("span", "tower-tier tower-tier-" + r.tier, r.tier));
    if (r.hp) { tier.appendChild(el("span", "er-hp", q.hp)); }
    var cd = el("span", "er-countdown", r.text);
    cd.title = q.countdown_label;
    cd.setAttribute("data-er-late", "0");
    if (r.deadline) {
      cd.setAttribute("data-er-deadline", r.deadline);
      cd.setAttribute("data-er-kind", r.kind);
    }
    var clockBox = el("div", "er-clock");
    clockBox.appendChild(cd);
    var main = el("div", "er-main");
    if (q.kiosk) {
      main.appendChild(el("span", "er-title", r.title));
    } else {
      main.appendChild(actionButton("open", r.id, q, "er-title btn btn-link p-0 text-start")).textContent = r.title;
    }
    var meta = el("div", "er-meta");
    r.meta.forEach(function (part, i) {
      if (i) { meta.appendChild(document.createTextNode(" · ")); }
      if (part && typeof part === "object") {
        var a = el("a", "", part.text);
        a.href = part.href;
        meta.appendChild(a);
      } else {
        meta.appendChild(document.createTextNode(part));
      }
    });
    main.appendChild(meta);
    if (r.step) { main.appendChild(el("div", "er-step", r.step)); }
    row.appendChild(tier);
    row.appendChild(clockBox);
    row.appendChild(main);
    if (!q.kiosk) {
      var actions = el("div", "er-actions");
      ["ack", "assign", "step", "snooze", "resolve"].forEach(function (a) {
        if (a !== "ack" || r.ack) { actions.appendChild(actionButton(a, r.id, q)); }
      });
      row.appendChild(actions);
    }
    return row;
  }

  function draw(q) {
    var box = document.getElementById("emergency-room-queue");
    if (!box || !q) { return; }
    var old = {};
    Array.prototype.forEach.call(box.querySelectorAll(":scope > .er-row"), function (r) {
      old[r.getAttribute("data-er-ex")] = r;
    });
    var wanted = (q.rows || []).map(function (r) {
      var node = old[r.id];
      return node && node.getAttribute("data-er-v") === r.v ? node : buildRow(r, q);
    });
    if (!wanted.length) { wanted = [el("div", "er-empty", q.empty)]; }
    var cursor = box.firstChild;
    wanted.forEach(function (node) {
      if (node === cursor) { cursor = cursor.nextSibling; } else { box.insertBefore(node, cursor); }
    });
    while (cursor) {
      var next = cursor.nextSibling;
      box.removeChild(cursor);
      cursor = next;
    }
    tick();
  }

  function send(action, ex) {
    var dc = window.dash_clientside;
    if (!dc || !dc.set_props) { return; }
    dc.set_props(INTENT, { data: { action: action, ex: ex || null, n: Date.now() } });
  }

  function typing(el) {
    if (!el) { return false; }
    var tag = (el.tagName || "").toUpperCase();
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("click", function (ev) {
    if (!document.getElementById(ROOT)) { return; }
    var el = ev.target && ev.target.closest ? ev.target.closest("[data-er-action]") : null;
    if (!el) { return; }
    remember(rowOf(el));
    send(el.getAttribute("data-er-action"), el.getAttribute("data-er-ex"));
  });

  document.addEventListener("focusin", function (ev) {
    if (document.getElementById(ROOT)) { remember(rowOf(ev.target)); }
  });

  document.addEventListener("mousedown", function (ev) {
    // A click outside the queue lets the focus go where the person put it.
    if (!rowOf(ev.target) && !(ev.target.closest && ev.target.closest(".modal"))) { focus.ex = null; }
  });

  document.addEventListener("keydown", function (ev) {
    var root = document.getElementById(ROOT);
    if (!root || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var modal = document.querySelector(".modal.show");
    if (modal) {
      // Enter in a one-line field saves the form; Esc is the modal's own.
      if (ev.key === "Enter" && (ev.target.tagName || "").toUpperCase() === "INPUT"
          && ev.target.type !== "checkbox") {
        var submit = document.getElementById("emergency-room-submit");
        if (submit) { ev.preventDefault(); submit.click(); }
      }
      return;
    }
    if (typing(ev.target)) { return; }
    var kiosk = root.classList.contains("er-kiosk");
    var list = rows();
    var row = rowOf(ev.target);
    var i = row ? list.indexOf(row) : -1;
    var key = ev.key;
    if (key === "j" || key === "k" || ((key === "ArrowDown" || key === "ArrowUp") && row)) {
      if (!list.length) { return; }
      var down = key === "j" || key === "ArrowDown";
      var next = list[i < 0 ? 0 : Math.max(0, Math.min(list.length - 1, i + (down ? 1 : -1)))];
      next.focus();
      next.scrollIntoView({ block: "nearest" });
      remember(next);
      ev.preventDefault();
      return;
    }
    if (key === "Enter" && row && ev.target === row) {
      ev.preventDefault();
      send("open", row.getAttribute("data-er-ex"));
      return;
    }
    if (key === "Escape") {
      if (document.querySelector("#emergency-room-detail .er-detail")) { send("close"); }
      return;
    }
    if (kiosk) { return; }
    if (key === "n") {
      ev.preventDefault();
      send("raise");
      return;
    }
    var action = KEYS[key];
    if (action && row) {
      if (action === "ack" && !row.querySelector('[data-er-action="ack"]')) { return; }
      ev.preventDefault();
      send(action, row.getAttribute("data-er-ex"));
    }
  });

  window.setInterval(tick, 1000);

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.emergencyRoom = {
    /* A refresh brought a changed queue: draw it. */
    draw: function (q) {
      draw(q);
      return "";
    },

    /* A refresh brought the tower's clock: re-anchor the countdowns and tick now. */
    clock: function (data) {
      if (data && data.now) {
        clock = { tower: Date.parse(data.now), wall: Date.now(), rate: Number(data.rate),
                  words: data.words || {} };
        if (!isFinite(clock.rate)) { clock.rate = 1; }
        window.setTimeout(tick, 0);
      }
      return "";
    },

    /* The "acting as" field and its copy in localStorage (dcc.Store, storage local). */
    actor: function (value, stored) {
      var dc = window.dash_clientside;
      var triggered = (dc.callback_context.triggered || []).map(function (t) { return t.prop_id; });
      if (triggered.indexOf("emergency-room-actor-input.value") >= 0) {
        return [dc.no_update, value || "operator"];
      }
      return [stored || "operator", dc.no_update];
    }
  };
}());
