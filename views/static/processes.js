// The processes page: the live feed (one stream shared by the site's tabs) sends it the
// rows that change; rows expand into details that htmx loads. While the tab is hidden
// for a while it stops watching, and watches again (with what the page shows) when
// it is visible again.
(function () {
  'use strict';
  var table = document.getElementById('processes');
  if (!table || !(window.EventSource || window.SharedWorker)) return;
  var source = null;
  var hiddenTimer = null;
  var HIDDEN_CLOSE_MS = 60000;
  var retryMs = 2000;
  var retryTimer = null;

  function parse(html) {
    var template = document.createElement('template');
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function versionOf(el) {
    var v = el && el.getAttribute('data-version');
    return v === null || v === undefined ? -1 : Number(v);
  }

  // Whether a row is expanded lives in its details slot (a row of its own, which no
  // re-render replaces): shown means expanded. A re-rendered row (from the feed, or an
  // action's answer that htmx swaps in) arrives collapsed, so its expander is set from it.
  function slotOf(button) {
    return document.getElementById(button.getAttribute('aria-controls'));
  }

  function syncExpander(row) {
    var button = row && row.querySelector('.expander');
    var slot = button && slotOf(button);
    if (!slot) return;
    var expanded = !slot.hidden;
    button.setAttribute('aria-expanded', expanded ? 'true' : 'false');
    var label = button.getAttribute(expanded ? 'data-label-hide' : 'data-label-show');
    if (label) {
      button.title = label;
      button.setAttribute('aria-label', label);
    }
  }

  // Keep what the user had open: the ☰ menu (the details slot keeps itself).
  function carryState(oldRow, newRow) {
    var oldMenu = oldRow.querySelector('details.menu');
    var newMenu = newRow.querySelector('details.menu');
    if (oldMenu && newMenu && oldMenu.open) newMenu.open = true;
  }

  function replaceRow(newRow) {
    var oldRow = document.getElementById(newRow.id);
    if (!oldRow) return;
    if (versionOf(newRow) < versionOf(oldRow)) return;
    if (
      oldRow.getAttribute('data-status') === newRow.getAttribute('data-status') &&
      !oldRow.classList.contains('deleting')
    ) {
      // Same status, same menu: patch the other cells so an open ☰ menu or a focused
      // button is not swapped out from under the user (progress moves every few seconds).
      var oldCells = oldRow.children;
      var newCells = newRow.children;
      for (var i = 0; i < newCells.length && i < oldCells.length; i++) {
        if (oldCells[i].classList.contains('actions') || oldCells[i].classList.contains('expand')) continue;
        oldCells[i].innerHTML = newCells[i].innerHTML;
      }
      oldRow.setAttribute('data-version', newRow.getAttribute('data-version'));
      window.htmx.process(oldRow);
      return;
    }
    carryState(oldRow, newRow);
    oldRow.replaceWith(newRow);
    syncExpander(newRow);
    window.htmx.process(newRow);
    // Open details follow the row: refresh their facts now rather than at the next poll.
    var facts = document.getElementById(newRow.id.replace(/-row$/, '-facts'));
    if (facts) window.htmx.trigger(facts, 'refresh');
  }

  function addBlock(block) {
    if (document.getElementById(block.id)) {
      // Already shown (added by this page's own Save): the feed's copy may be newer.
      var row = block.querySelector('tr.process-row');
      if (row) replaceRow(row);
      return;
    }
    var where = table.getAttribute('data-new-rows');
    if (where === 'none') return;
    var first = table.querySelector('tbody.process');
    // Newest first: a new process goes on top.
    if (where === 'top' && first) table.insertBefore(block, first);
    else table.appendChild(block);
    window.htmx.process(block);
  }

  /** What the page shows, id → status version, so a (re)opened stream sends only what changed. */
  function knownVersions() {
    var rows = table.querySelectorAll('tr.process-row');
    var out = {};
    for (var i = 0; i < rows.length; i++) out[rows[i].getAttribute('data-id')] = versionOf(rows[i]);
    return out;
  }

  function known() {
    var versions = knownVersions();
    return Object.keys(versions)
      .map(function (id) {
        return id + ':' + versions[id];
      })
      .join(',');
  }

  function handle(type, data) {
    if (type === 'row') {
      var row = parse(data);
      if (row) replaceRow(row);
    } else if (type === 'block') {
      var block = parse(data);
      if (block) addBlock(block);
    } else if (type === 'gone') {
      var gone = document.getElementById('process-' + data);
      if (gone) gone.remove();
    }
  }

  function liveOff() {
    var note = document.getElementById('live-state');
    if (note) note.hidden = false;
  }

  // Every tab of the site shares one stream per feed address through a SharedWorker
  // (static/live-feed.js): over HTTP/1.1 a browser opens at most six connections to a
  // site, and ten tabs each holding a stream would starve the rest. Without
  // SharedWorker, the tab opens its own EventSource.
  var shared = null;
  var sharedWatching = false;
  function sharedPort() {
    if (shared || !window.SharedWorker) return shared;
    try {
      shared = new SharedWorker('/static/live-feed.js', { name: 'trainyard-live-feed' });
    } catch {
      return null;
    }
    shared.port.onmessage = function (e) {
      var message = e.data || {};
      if (message.type === 'closed') {
        sharedWatching = false;
        liveOff();
      } else handle(message.type, message.data);
    };
    shared.port.start();
    return shared;
  }

  function open() {
    if (sharedPort()) {
      if (sharedWatching) return;
      sharedWatching = true;
      shared.port.postMessage({ type: 'watch', url: table.getAttribute('data-events'), known: knownVersions() });
      return;
    }
    if (source) return;
    var url = table.getAttribute('data-events') + '&known=' + encodeURIComponent(known());
    source = new EventSource(url);
    ['row', 'block', 'gone'].forEach(function (type) {
      source.addEventListener(type, function (e) {
        handle(type, e.data);
      });
    });
    source.addEventListener('bye', close);
    source.onopen = function () {
      retryMs = 2000;
    };
    source.onerror = function () {
      if (!source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The server refused (logged out, forbidden): say so; the browser will not retry.
        source = null;
        liveOff();
        return;
      }
      // A dropped connection: reopen ourselves, telling the server what the page shows
      // now (the browser's own retry would repeat the first address), backing off.
      close();
      clearTimeout(retryTimer);
      retryTimer = setTimeout(function () {
        if (!document.hidden) open();
      }, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    };
  }

  function close() {
    if (shared && sharedWatching) {
      shared.port.postMessage({ type: 'leave' });
      sharedWatching = false;
    }
    if (source) source.close();
    source = null;
  }

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      hiddenTimer = setTimeout(close, HIDDEN_CLOSE_MS);
    } else {
      clearTimeout(hiddenTimer);
      open();
    }
  });
  window.addEventListener('pagehide', close);

  // A row htmx swapped in (an action's answer) must not replace a newer one from the feed.
  document.addEventListener('htmx:beforeSwap', function (e) {
    var target = e.detail.target;
    if (!target || !target.classList || !target.classList.contains('process-row')) return;
    var incoming = parse(e.detail.serverResponse || '');
    if (incoming && incoming.id === target.id && versionOf(incoming) < versionOf(target)) e.detail.shouldSwap = false;
  });
  // A row htmx swapped in (an action's answer, e.g. Запустить) shows the slot's state too.
  document.addEventListener('htmx:load', function (e) {
    var elt = e.detail && e.detail.elt;
    if (elt && elt.classList && elt.classList.contains('process-row')) syncExpander(elt);
  });
  // A block htmx appended (a new process) that the feed appended first: keep one. On a
  // newest-first page the new ones move to the top.
  document.addEventListener('htmx:afterSwap', function (e) {
    if (e.detail.target !== table) return;
    var blocks = table.querySelectorAll('tbody.process');
    var seen = {};
    for (var i = blocks.length - 1; i >= 0; i--) {
      if (seen[blocks[i].id]) blocks[i].remove();
      else seen[blocks[i].id] = true;
    }
    if (table.getAttribute('data-new-rows') !== 'top') return;
    var kept = Array.prototype.slice.call(table.querySelectorAll('tbody.process'));
    kept.sort(function (a, b) {
      return Number(b.getAttribute('data-id')) - Number(a.getAttribute('data-id'));
    });
    for (var j = 0; j < kept.length; j++) table.appendChild(kept[j]);
  });

  // ▸ expands a row into its details (loaded by htmx), ▾ folds them away again. A click
  // anywhere else on the row does the same, unless it is on a control of its own (a link,
  // a button, the ☰ menu, a field) or ends a text selection.
  var CONTROLS = 'a, button, input, select, textarea, label, summary, details, [role=menuitem]';

  function toggle(button) {
    var slot = slotOf(button);
    if (!slot) return;
    if (!slot.hidden) {
      var empty = document.createElement('tr');
      empty.id = slot.id;
      empty.className = 'details';
      empty.hidden = true;
      slot.replaceWith(empty);
    } else {
      // Shown at once (empty until the details arrive), so a re-render meanwhile keeps it open.
      slot.hidden = false;
      window.htmx.ajax('GET', button.getAttribute('data-details-url'), { target: slot, swap: 'outerHTML' });
    }
    syncExpander(button.closest('tr'));
  }

  table.addEventListener('click', function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    var button = target.closest('.expander');
    if (!button) {
      var row = target.closest('tr.process-row');
      if (!row || target.closest(CONTROLS)) return;
      var selection = window.getSelection && window.getSelection();
      if (selection && !selection.isCollapsed && row.contains(selection.anchorNode)) return;
      button = row.querySelector('.expander');
      if (!button) return;
    }
    toggle(button);
  });

  if (!document.hidden) open();
})();
