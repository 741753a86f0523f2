// agentetl web UI: progressive enhancement only. Every page works without
// this script; it adds (1) live updates of elements marked data-poll, and
// (2) lint as you type in the config editor. Server text is only ever
// inserted as text or as HTML the server rendered through html/template.
(function () {
  "use strict";

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // ---- live updates ----
  function startPolling(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-poll-ms") || "3000", 10);
    if (!url || !(every >= 500)) {
      return;
    }
    var busy = false;
    var timer = setInterval(function () {
      if (busy || document.hidden) {
        return;
      }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (res) {
          if (res.status === 401 || res.status === 403 || res.status === 404) {
            clearInterval(timer);
            return null;
          }
          return res.ok ? res.text() : null;
        })
        .then(function (html) {
          if (html === null || html === undefined) {
            return;
          }
          var doc = new DOMParser().parseFromString(html, "text/html");
          var nodes = Array.prototype.slice.call(doc.body.childNodes);
          el.replaceChildren.apply(el, nodes);
          var state = el.querySelector("[data-running]");
          if (state && state.getAttribute("data-running") === "false") {
            clearInterval(timer);
          }
          el.dispatchEvent(new CustomEvent("agentetl:updated", { bubbles: true }));
        })
        .catch(function () { /* the next tick retries */ })
        .finally(function () { busy = false; });
    }, every);
  }

  // ---- live lint ----
  function lineStart(text, line) {
    var pos = 0;
    for (var i = 1; i < line; i++) {
      var nl = text.indexOf("\n", pos);
      if (nl < 0) {
        return text.length;
      }
      pos = nl + 1;
    }
    return pos;
  }

  function gotoLine(area, line) {
    var start = lineStart(area.value, line);
    var end = area.value.indexOf("\n", start);
    if (end < 0) {
      end = area.value.length;
    }
    area.focus();
    area.setSelectionRange(start, end);
    var lh = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (line - 4) * lh);
  }

  function issueText(is) {
    var loc = "";
    if (is.line > 0) {
      loc = "line " + is.line + ", column " + is.column;
      if (is.where === "generated") {
        loc = "generated YAML " + loc;
      }
      loc += ": ";
    }
    return loc + (is.path ? is.path + ": " : "") + is.message;
  }

  function showLint(area, res) {
    var status = document.getElementById("lint-status");
    var list = document.getElementById("lint-issues");
    if (!status || !list) {
      return;
    }
    var issues = res.issues || [];
    status.className = res.valid && issues.length === 0 ? "good" : "bad";
    status.textContent = res.valid && issues.length === 0
      ? "No problems: the config is valid and its generated YAML passes lint."
      : issues.length + " problem(s).";
    var items = issues.map(function (is) {
      var li = document.createElement("li");
      li.className = "issue";
      var b = document.createElement("button");
      b.type = "button";
      b.className = "linklike";
      b.setAttribute("data-line", String(is.line || 0));
      b.setAttribute("data-where", is.where || "config");
      b.textContent = issueText(is);
      li.appendChild(b);
      return li;
    });
    list.replaceChildren.apply(list, items);
  }

  function setupEditor(area) {
    var url = area.getAttribute("data-lint-url");
    var id = area.getAttribute("data-pipeline") || "";
    var timer = null;
    var seq = 0;
    function run() {
      var mine = ++seq;
      var body = new URLSearchParams();
      body.set("csrf", csrfToken());
      body.set("id", id);
      body.set("config", area.value);
      fetch(url, {
        method: "POST", credentials: "same-origin", body: body,
        headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" }
      })
        .then(function (res) { return res.json(); })
        .then(function (res) {
          if (mine !== seq) {
            return; // a newer check is on its way
          }
          if (res.error) {
            showLint(area, { valid: false, issues: [{ line: 0, message: res.error }] });
            return;
          }
          showLint(area, res);
        })
        .catch(function () { /* keep the last result */ });
    }
    area.addEventListener("input", function () {
      var status = document.getElementById("lint-status");
      if (status) {
        status.className = "";
        status.textContent = "Checking…";
      }
      clearTimeout(timer);
      timer = setTimeout(run, 350);
    });
    var list = document.getElementById("lint-issues");
    if (list) {
      list.addEventListener("click", function (ev) {
        var b = ev.target.closest("button[data-line]");
        if (b && b.getAttribute("data-where") === "config") {
          var line = parseInt(b.getAttribute("data-line"), 10);
          if (line > 0) {
            gotoLine(area, line);
          }
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), startPolling);
    var area = document.getElementById("config-editor");
    if (area) {
      setupEditor(area);
    }
  });
})();
