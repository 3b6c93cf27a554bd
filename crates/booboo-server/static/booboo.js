// booboo's dashboard works without this file; it adds conveniences:
// copy buttons, confirmations, filters that apply on change, "select all",
// the live connection status of the setup page, and local times on hover.
// Loaded from /static with `defer`; the content security policy allows no
// inline script.
(function () {
  "use strict";

  function copyText(button, text) {
    var old = button.textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = old; }, 1500);
    };
    var fallback = function (el) {
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selectable */ }
      document.body.removeChild(area);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    copyText(button, source.tagName === "INPUT" || source.tagName === "TEXTAREA" ? source.value : source.textContent);
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.form.requestSubmit) select.form.requestSubmit(); else select.form.submit();
    });
  });

  document.querySelectorAll("[data-select-all]").forEach(function (all) {
    var form = all.form;
    var name = all.getAttribute("data-select-all");
    var boxes = function () { return form.querySelectorAll("input[type=checkbox][name='" + name + "']"); };
    var counter = form.querySelector("[data-selected-count]");
    var original = counter ? counter.textContent : "";
    var update = function () {
      var ticked = Array.prototype.filter.call(boxes(), function (b) { return b.checked; }).length;
      if (counter) counter.textContent = ticked ? ticked + " selected" : original;
      all.checked = ticked > 0 && ticked === boxes().length;
      all.indeterminate = ticked > 0 && ticked < boxes().length;
    };
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    form.addEventListener("change", function (event) {
      if (event.target !== all) update();
    });
  });

  var live = document.querySelector("[data-live-status]");
  if (live) {
    var poll = function () {
      fetch(live.getAttribute("data-live-status"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (status) {
          if (!status) return;
          ["waiting", "connected", "receiving"].forEach(function (state) {
            live.classList.toggle("status-" + state, state === status.state);
          });
          live.querySelector("[data-field=headline]").textContent = status.headline;
          live.querySelector("[data-field=detail]").textContent = status.detail;
        })
        .catch(function () { /* try again on the next tick */ });
    };
    setInterval(poll, 2000);
  }

  document.querySelectorAll("time[datetime]").forEach(function (time) {
    var when = new Date(time.getAttribute("datetime"));
    if (!isNaN(when.getTime())) time.title = when.toLocaleString() + " (" + time.title + ")";
  });
})();
