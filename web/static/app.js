// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // A submitted form's buttons are disabled so a second click does not send it again (the
  // server records a command once anyway: the form carries its idempotency key).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  });

  function editable(el) {
    if (!el || !(el instanceof Element)) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // Whether something was typed into a form of this page (leaving it would lose that).
  var typed = false;
  document.addEventListener("input", function (event) {
    if (event.target instanceof Element && event.target.closest("form")) typed = true;
  });

  // 「/」 goes to the search field from anywhere but a field, the calendar or the error summary
  // (where a caseworker may be typing a date), and never away from a form typed into.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    var t = event.target;
    if (editable(t) || (t instanceof Element && t.closest(".cal, .error-summary, form"))) return;
    var q = document.getElementById("q");
    if (q) {
      event.preventDefault();
      q.focus();
      q.select();
    } else if (!typed && !document.getElementById("form-errors")) {
      event.preventDefault();
      window.location.assign("/search");
    }
  });

  // After a failed submit the error summary takes the focus; its links move the focus to the
  // field in error (a plain fragment link would only scroll).
  function focusSummary() {
    var summary = document.getElementById("form-errors");
    if (summary && summary.classList.contains("error-summary")) summary.focus();
  }
  document.addEventListener("click", function (event) {
    var a = event.target instanceof Element ? event.target.closest(".error-summary a[href^='#']") : null;
    if (!a) return;
    var target = document.getElementById(a.getAttribute("href").slice(1));
    if (!target) return;
    event.preventDefault();
    target.focus();
    target.scrollIntoView({ block: "center" });
  });

  // ---- Dates: the other form beside the field, read by the server's one parser ----------

  function csrf() {
    var t = document.querySelector("input[name=csrf]");
    return t ? t.value : "";
  }

  function readDate(input, then) {
    var body = new URLSearchParams();
    body.set("csrf", csrf());
    body.set("kind", input.dataset.date);
    body.set("v", input.value);
    fetch("/dates/read", {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) { if (answer) then(answer); })
      .catch(function () { /* the field works without the echo */ });
  }

  function echoOf(input) {
    return document.getElementById("echo-" + input.id);
  }

  var asked = 0; // the newest reading asked for: an older answer arriving late is dropped

  function refresh(input, showError) {
    var echo = echoOf(input);
    var value = input.value.trim();
    var mine = ++asked;
    input.dataset.asked = String(mine);
    if (!value) {
      delete input.dataset.iso;
      if (echo) { echo.textContent = ""; echo.classList.remove("date-echo-error"); }
      return;
    }
    readDate(input, function (answer) {
      if (input.dataset.asked !== String(mine) || input.value.trim() !== value) return;
      if (answer.iso) {
        input.dataset.iso = answer.iso;
        if (echo) { echo.textContent = answer.other; echo.classList.remove("date-echo-error"); }
      } else {
        delete input.dataset.iso;
        if (echo) {
          echo.textContent = showError ? answer.error : "";
          echo.classList.toggle("date-echo-error", showError);
        }
      }
    });
  }

  // ---- The calendar: Japanese whatever the browser's language ------------------------------

  var WEEKDAYS = ["日", "月", "火", "水", "木", "金", "土"];
  var open = null; // { input, box, view: Date (first of month), focus: Date }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function iso(d) { return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()); }
  function isoMonth(d) { return d.getFullYear() + "-" + pad(d.getMonth() + 1); }
  function day(y, m, d) { return new Date(y, m, d, 12); }
  function parseIso(s) {
    var m = /^(\d{4})-(\d{2})(?:-(\d{2}))?$/.exec(s || "");
    return m ? day(+m[1], +m[2] - 1, m[3] ? +m[3] : 1) : null;
  }
  function addMonths(d, n) {
    var last = day(d.getFullYear(), d.getMonth() + n + 1, 0).getDate();
    return day(d.getFullYear(), d.getMonth() + n, Math.min(d.getDate(), last));
  }

  function close(returnFocus) {
    if (!open) return;
    var input = open.input;
    open.box.remove();
    open.button.setAttribute("aria-expanded", "false");
    open = null;
    if (returnFocus) input.focus();
  }

  function choose(value) {
    var input = open.input;
    input.value = value;
    close(true);
    refresh(input, true);
  }

  function button(text, label, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (label) b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  function render() {
    var o = open, month = o.input.dataset.date === "month";
    var f = o.focus;
    o.box.textContent = "";
    var head = document.createElement("div");
    head.className = "cal-head";
    var title = document.createElement("span");
    title.className = "cal-title";
    title.setAttribute("aria-live", "polite");
    title.textContent = month ? f.getFullYear() + "年" : f.getFullYear() + "年" + (f.getMonth() + 1) + "月";
    head.appendChild(button("‹", month ? "前の年" : "前の月", function () { move(month ? -12 : -1, "month"); }));
    head.appendChild(title);
    head.appendChild(button("›", month ? "次の年" : "次の月", function () { move(month ? 12 : 1, "month"); }));
    o.box.appendChild(head);
    var grid = document.createElement("table");
    grid.className = "cal-grid";
    grid.setAttribute("role", "grid");
    grid.setAttribute("aria-label", title.textContent);
    var body = document.createElement("tbody");
    var cells = [];
    if (month) {
      for (var r = 0; r < 3; r++) {
        var tr = document.createElement("tr");
        for (var c = 0; c < 4; c++) {
          var m = r * 4 + c, d = day(f.getFullYear(), m, 1);
          var td = document.createElement("td");
          var b = button((m + 1) + "月", f.getFullYear() + "年" + (m + 1) + "月", pick(isoMonth(d)));
          b.dataset.value = isoMonth(d);
          b.tabIndex = m === f.getMonth() ? 0 : -1;
          td.appendChild(b); tr.appendChild(td); cells.push(b);
        }
        body.appendChild(tr);
      }
    } else {
      var thead = document.createElement("thead"), hr = document.createElement("tr");
      WEEKDAYS.forEach(function (w, i) {
        var th = document.createElement("th");
        th.scope = "col"; th.textContent = w;
        if (i === 0) th.className = "sun";
        if (i === 6) th.className = "sat";
        hr.appendChild(th);
      });
      thead.appendChild(hr); grid.appendChild(thead);
      var first = day(f.getFullYear(), f.getMonth(), 1);
      var start = day(f.getFullYear(), f.getMonth(), 1 - first.getDay());
      for (var w = 0; w < 6; w++) {
        var row = document.createElement("tr");
        for (var k = 0; k < 7; k++) {
          var dd = day(start.getFullYear(), start.getMonth(), start.getDate() + w * 7 + k);
          var cell = document.createElement("td");
          if (dd.getMonth() === f.getMonth()) {
            var label = dd.getFullYear() + "年" + (dd.getMonth() + 1) + "月" + dd.getDate() + "日（" + WEEKDAYS[dd.getDay()] + "）";
            var db = button(String(dd.getDate()), label, pick(iso(dd)));
            db.dataset.value = iso(dd);
            db.tabIndex = dd.getDate() === f.getDate() ? 0 : -1;
            if (o.input.dataset.iso === iso(dd)) db.setAttribute("aria-pressed", "true");
            cell.appendChild(db); cells.push(db);
          }
          row.appendChild(cell);
        }
        body.appendChild(row);
      }
    }
    grid.appendChild(body);
    o.box.appendChild(grid);
    o.box.appendChild(button("閉じる", null, function () { close(true); }));
    var current = cells.filter(function (b) { return b.tabIndex === 0; })[0];
    if (current) current.focus();
  }

  function pick(value) { return function () { choose(value); }; }

  function move(n, unit) {
    var f = open.focus;
    open.focus = unit === "month" ? addMonths(f, n) : day(f.getFullYear(), f.getMonth(), f.getDate() + n);
    render();
  }

  function keys(event) {
    if (!open) return;
    var month = open.input.dataset.date === "month";
    var step = {
      ArrowLeft: [-1, month ? "month" : "day"], ArrowRight: [1, month ? "month" : "day"],
      ArrowUp: [month ? -4 : -7, month ? "month" : "day"], ArrowDown: [month ? 4 : 7, month ? "month" : "day"],
      PageUp: [month ? -12 : -1, "month"], PageDown: [month ? 12 : 1, "month"]
    }[event.key];
    if (event.key === "Escape") {
      event.preventDefault();
      close(true);
    } else if (step && event.target.closest(".cal-grid")) {
      event.preventDefault();
      move(step[0], step[1]);
    }
  }

  function openCalendar(input, button) {
    if (open) close(false);
    var box = document.createElement("div");
    box.className = "cal";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", input.dataset.date === "month" ? "月を選ぶ" : "日付を選ぶ");
    box.addEventListener("keydown", keys);
    // Tab out of the calendar closes it (it would cover the next fields).
    box.addEventListener("focusout", function (event) {
      var to = event.relatedTarget;
      if (open && open.box === box && to && !box.contains(to)) close(false);
    });
    var start = parseIso(input.dataset.iso) || parseIso(input.value.trim()) || day(new Date().getFullYear(), new Date().getMonth(), new Date().getDate());
    open = { input: input, button: button, box: box, focus: start };
    button.setAttribute("aria-expanded", "true");
    input.parentNode.appendChild(box);
    render();
  }

  document.addEventListener("mousedown", function (event) {
    if (open && !open.box.contains(event.target) && event.target !== open.button) close(false);
  });

  function enhance(input) {
    var timer = null;
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { refresh(input, false); }, 150);
    });
    input.addEventListener("change", function () {
      window.clearTimeout(timer);
      refresh(input, true);
    });
    // The calendar is for the mouse; from the keyboard Alt+↓ (or F4) opens it, so that Tab
    // goes from field to field as at the counter.
    var b = document.createElement("button");
    b.type = "button";
    b.className = "cal-open";
    b.tabIndex = -1;
    b.textContent = "暦";
    b.setAttribute("aria-label", input.dataset.date === "month" ? "月を一覧から選ぶ" : "日付をカレンダーから選ぶ");
    b.setAttribute("aria-haspopup", "dialog");
    b.setAttribute("aria-expanded", "false");
    b.addEventListener("click", function () { openCalendar(input, b); });
    input.setAttribute("aria-keyshortcuts", "Alt+ArrowDown");
    input.addEventListener("keydown", function (event) {
      if ((event.altKey && event.key === "ArrowDown") || event.key === "F4") {
        event.preventDefault();
        openCalendar(input, b);
      }
    });
    var echo = echoOf(input);
    input.parentNode.insertBefore(b, echo || input.nextSibling);
    if (input.value.trim()) refresh(input, false);
  }

  function start() {
    document.querySelectorAll("input[data-date]").forEach(enhance);
    focusSummary();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
