// Small behaviours every page shares; no build step, no framework beyond htmx.
(function () {
  'use strict';
  var lang = document.documentElement.lang === 'en' ? 'en-GB' : 'ru-RU';
  var timeFormat = new Intl.DateTimeFormat(lang, { dateStyle: 'short', timeStyle: 'medium' });

  // Timestamps arrive in UTC from the server; show them in the browser's own time zone.
  function localTimes(root) {
    var nodes = (root.querySelectorAll ? root : document).querySelectorAll('time[data-local]');
    for (var i = 0; i < nodes.length; i++) {
      var d = new Date(nodes[i].getAttribute('datetime'));
      if (!isNaN(d.getTime())) {
        nodes[i].title = nodes[i].textContent;
        nodes[i].textContent = timeFormat.format(d);
      }
      nodes[i].removeAttribute('data-local');
    }
  }

  function ready(fn) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', fn);
    else fn();
  }

  ready(function () {
    localTimes(document);
    if (window.htmx) window.htmx.onLoad(localTimes);

    // The language switch keeps the rest of the address (e.g. the run on the monitoring page).
    var links = document.querySelectorAll('.lang a');
    for (var i = 0; i < links.length; i++) {
      var url = new URL(window.location.href);
      url.searchParams.set('lang', links[i].getAttribute('hreflang'));
      links[i].href = url.pathname + url.search;
    }
  });

  document.addEventListener('click', function (event) {
    var target = event.target instanceof Element ? event.target : null;
    // [data-dismiss="#id"] empties that region instead of navigating (the link is the no-JS fallback).
    var dismiss = target && target.closest('[data-dismiss]');
    if (dismiss) {
      var region = document.querySelector(dismiss.getAttribute('data-dismiss'));
      if (region) {
        event.preventDefault();
        region.innerHTML = '';
      }
    }
    // The host-key "confirm" step: the fetched fingerprint goes into its field.
    var confirm = target && target.closest('[data-fingerprint-value]');
    if (confirm) {
      var field = document.querySelector(confirm.getAttribute('data-fingerprint-target'));
      if (field) {
        field.value = confirm.getAttribute('data-fingerprint-value');
        var done = document.createElement('strong');
        done.className = 'confirmed';
        done.textContent = confirm.getAttribute('data-confirmed');
        confirm.replaceWith(done);
      }
    }
    // One ☰ menu open at a time; a click elsewhere closes it.
    var menus = document.querySelectorAll('details.menu[open]');
    for (var j = 0; j < menus.length; j++) {
      if (!target || !menus[j].contains(target) || target.closest('[role=menuitem]')) menus[j].removeAttribute('open');
    }
  });

  document.addEventListener('keydown', function (event) {
    if (event.key !== 'Escape') return;
    var menus = document.querySelectorAll('details.menu[open]');
    for (var i = 0; i < menus.length; i++) menus[i].removeAttribute('open');
  });

  // Selects that submit their form on change (run pickers).
  document.addEventListener('change', function (event) {
    var el = event.target;
    if (el instanceof HTMLSelectElement && el.hasAttribute('data-autosubmit') && el.form) el.form.submit();
  });

  // A request that never reached the server (network down, server restarting) still says so.
  document.addEventListener('htmx:sendError', function () {
    var flash = document.getElementById('flash');
    if (!flash) return;
    // The text comes in the page's language from the layout (views/i18n.ts).
    var text = flash.getAttribute('data-no-answer');
    flash.innerHTML = '';
    var box = document.createElement('div');
    box.className = 'flash error';
    box.setAttribute('role', 'alert');
    box.textContent = text;
    flash.appendChild(box);
  });
  // A successful action clears an old error message.
  document.addEventListener('htmx:afterRequest', function (event) {
    var flash = document.getElementById('flash');
    var detail = event.detail || {};
    if (flash && detail.successful && detail.target !== flash) flash.innerHTML = '';
  });
})();
