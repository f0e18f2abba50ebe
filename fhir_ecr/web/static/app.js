/* mECR pages: small progressive enhancements; every page works without this file except the one-tap
   check-in and the live SMART helper. No framework. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = meta ? meta.getAttribute("content") : "";
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  /* SMART styling (smart_style_url from the EHR launch): adopt the EHR's colours and font. */
  var styleUrl = document.body.getAttribute("data-smart-style");
  if (styleUrl) {
    fetch(styleUrl, { credentials: "omit" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (s) {
      if (!s) return;
      var map = { color_background: "--bg", color_text: "--fg", color_highlight: "--primary", color_error: "--alert",
                  color_success: "--ok", font_family_body: "--font" };
      Object.keys(map).forEach(function (k) { if (typeof s[k] === "string") document.documentElement.style.setProperty(map[k], s[k]); });
    }).catch(function () {});
  }

  $all("select[data-autosubmit]").forEach(function (el) { el.addEventListener("change", function () { el.form.submit(); }); });
  $all("[data-print]").forEach(function (el) { el.addEventListener("click", function () { window.print(); }); });
  $all("[data-confirm]").forEach(function (el) {
    el.addEventListener("click", function (ev) { if (!window.confirm(el.getAttribute("data-confirm"))) ev.preventDefault(); });
  });
  $all("select[data-toggles]").forEach(function (el) {
    var target = document.getElementById(el.getAttribute("data-toggles"));
    function sync() { if (target) target.classList.toggle("js-hidden", el.value !== "group"); }
    el.addEventListener("change", sync); sync();
  });

  /* The SMART goal helper: asks the server's rule as the coach types. */
  var smartForm = $("form[data-smart-form]");
  if (smartForm) {
    var timer = null;
    var list = $("[data-smart-checks]", smartForm);
    var refresh = function () {
      var q = new URLSearchParams();
      ["description", "measure", "value", "due"].forEach(function (n) { q.set(n, smartForm.elements[n].value); });
      fetch("/app/goal-check?" + q.toString(), { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (checks) {
        list.innerHTML = "";
        checks.forEach(function (c) {
          var li = document.createElement("li");
          li.className = c.ok ? "ok" : "todo";
          var letter = document.createElement("span"); letter.className = "letter"; letter.setAttribute("aria-hidden", "true"); letter.textContent = c.letter;
          var name = document.createElement("strong"); name.textContent = c.name;
          li.appendChild(letter); li.appendChild(document.createTextNode(" ")); li.appendChild(name);
          li.appendChild(document.createTextNode(": " + (c.ok ? "yes" : c.hint)));
          list.appendChild(li);
        });
      }).catch(function () {});
    };
    smartForm.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
    smartForm.addEventListener("change", refresh);
  }

  /* Patient app: one-tap check-ins, queued on the device and sent when online. The server writes one
     check-in per habit per local day (a conditional update on the day's identifier), so sending a queued
     check-in twice never makes two; the queue also keeps only the latest tap per habit and day. */
  var app = document.getElementById("me");
  if (app) {
    var KEY = "mecr.checkins.v1";
    var tz = app.getAttribute("data-tz") || undefined;
    var url = app.getAttribute("data-checkin-url");
    var status = document.getElementById("sync-status");
    var load = function () { try { return JSON.parse(localStorage.getItem(KEY) || "{}"); } catch (e) { return {}; } };
    var save = function (q) { localStorage.setItem(KEY, JSON.stringify(q)); };
    var localDay = function () {
      try { return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date()); }
      catch (e) { return app.getAttribute("data-today"); }
    };
    var WORDS = { "done": "done", "partly": "partly done", "not-done": "not today" };
    var said = "";
    var show = function () {
      var n = Object.keys(load()).length;
      status.textContent = n ? (n + (n === 1 ? " check-in" : " check-ins") + " saved on this device; " +
        (navigator.onLine ? "sending…" : "they will be sent when you are back online.")) : said;
      status.classList.toggle("ok", !n && !!said);
    };
    var mark = function (li, value, pending) {
      $all(".tap", li).forEach(function (b) {
        var on = b.getAttribute("data-status") === value;
        b.setAttribute("aria-pressed", on ? "true" : "false");
        b.classList.toggle("pending", on && pending);
      });
      li.classList.toggle("is-done", value === "done");
    };
    var flushing = false;
    var flush = function () {
      if (flushing) return;
      var q = load(); var keys = Object.keys(q);
      if (!keys.length) { show(); return; }
      flushing = true;
      var next = function (i) {
        if (i >= keys.length) { flushing = false; show(); return; }
        var item = q[keys[i]];
        fetch(item.url, { method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
          body: JSON.stringify({ plan: item.plan, habit: item.habit, status: item.status, date: item.date }) })
          .then(function (r) {
            var cur = load();
            if (cur[keys[i]] && cur[keys[i]].status === item.status) delete cur[keys[i]];
            save(cur);
            var li = $('li[data-plan="' + item.plan + '"][data-habit="' + item.habit + '"]');
            if (li && item.date === localDay()) mark(li, r.ok ? item.status : "", false);
            if (!r.ok) {
              status.textContent = "A check-in could not be saved (" + r.status + "). Please try again.";
              next(i + 1);
              return;
            }
            return r.json().then(function (body) {
              /* the streak as the server now counts it, and a word for screen readers (the live region) */
              var title = li ? $(".habit-title", li).textContent : "Check-in";
              var streak = body && body.streak;
              if (li && streak && streak.text) $("[data-streak]", li).textContent = streak.text;
              said = title + ": " + (WORDS[item.status] || item.status) + " saved" + (streak && streak.text ? "; " + streak.text : "") + ".";
            }).catch(function () {}).then(function () { next(i + 1); });
          })
          .catch(function () { flushing = false; show(); });  /* offline: keep the rest for later */
      };
      next(0);
    };
    $all(".habit-today").forEach(function (li) {
      $all(".tap", li).forEach(function (b) {
        b.addEventListener("click", function () {
          var item = { plan: li.getAttribute("data-plan"), habit: li.getAttribute("data-habit"),
                       status: b.getAttribute("data-status"), date: localDay(), url: url };
          var q = load(); q[item.plan + "|" + item.habit + "|" + item.date] = item; save(q);
          mark(li, item.status, true);
          show(); flush();
        });
      });
    });
    window.addEventListener("online", flush);
    window.addEventListener("offline", show);
    setInterval(flush, 30000);
    flush();
    if ("serviceWorker" in navigator && app.getAttribute("data-sw")) {
      navigator.serviceWorker.register(app.getAttribute("data-sw"), { scope: "/app/" }).catch(function () {});
    }
  }

  /* Sign out: warn before unsent check-ins are dropped with the session. */
  $all("form[data-signout]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      var n = 0;
      try { n = Object.keys(JSON.parse(localStorage.getItem("mecr.checkins.v1") || "{}")).length; } catch (e) { n = 0; }
      if (n && !window.confirm(n + (n === 1 ? " check-in has" : " check-ins have") + " not been sent yet and will be lost. Sign out anyway?")) ev.preventDefault();
    });
  });

  /* Signed out: the patient app's offline copy (service worker cache) and check-in queue leave the device. */
  if (document.querySelector("[data-signed-out]")) {
    var out = document.getElementById("cleared");
    try { localStorage.removeItem("mecr.checkins.v1"); } catch (e) { /* storage disabled */ }
    var unregister = function () {
      return navigator.serviceWorker ? navigator.serviceWorker.getRegistrations().then(function (regs) {
        return Promise.all(regs.map(function (r) { return r.unregister(); }));
      }) : Promise.resolve();
    };
    var clear = function () {
      return window.caches ? caches.keys().then(function (keys) {
        return Promise.all(keys.filter(function (k) { return k.indexOf("mecr-") === 0; }).map(function (k) { return caches.delete(k); }));
      }) : Promise.resolve();
    };
    /* the worker goes first, so it cannot store a page after the caches are gone; a write it had under way is
       cleared by the second pass */
    unregister().then(clear).then(function () { return new Promise(function (done) { setTimeout(done, 300); }); })
      .then(clear).then(function () {
        document.body.setAttribute("data-cleared", "true");
        if (out) out.textContent = "Nothing of your session is kept on this device.";
      }).catch(function () { document.body.setAttribute("data-cleared", "error"); });
  }

  /* Wearable upload: send the file with the CSRF header and show what was imported. */
  $all("form[data-upload]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = $(".upload-result", form);
      out.textContent = "Uploading…";
      fetch(form.getAttribute("action"), { method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "X-CSRF-Token": CSRF, "Accept": "application/json" } })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          if (res.ok) {
            var n = res.body && (res.body.imported || res.body.created || res.body.count);
            out.textContent = "Uploaded" + (n !== undefined ? ": " + n + " readings added." : ".");
          } else {
            var issue = res.body && res.body.issue && res.body.issue[0];
            out.textContent = "The upload did not work: " + ((issue && issue.diagnostics) || "please try another file.");
          }
        })
        .catch(function () { out.textContent = "You are offline: upload the file when you are back online."; });
    });
  });
})();
