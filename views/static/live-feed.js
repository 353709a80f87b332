// The live feed shared by every tab of this site (a SharedWorker): one EventSource per
// distinct feed address, however many tabs watch it, so ten open processes pages hold
// one of the browser's six HTTP/1.1 connections to the site instead of ten (the rest
// would wait). Each tab sends {watch, url, known} when it shows a page and {leave} when
// it hides or goes; the worker forwards the feed's events to the tabs of that address,
// and replays the latest copy of each row to a tab that joins later (the tab keeps a
// row only when it is newer than its own, by data-version).
'use strict';

/** Feed address → { source, ports, known: id → version, latest: id → {event, data, version} }. */
var feeds = new Map();
/** Port → the feed address it watches. */
var watching = new Map();

function versionOf(data) {
  var m = /data-version="(-?\d+)"/.exec(data);
  return m ? Number(m[1]) : -1;
}

function idOf(data) {
  var m = /data-id="(\d+)"/.exec(data);
  return m ? m[1] : null;
}

function knownParam(known) {
  var parts = [];
  known.forEach(function (version, id) {
    parts.push(id + ':' + version);
  });
  return parts.join(',');
}

function broadcast(feed, message) {
  feed.ports.forEach(function (port) {
    port.postMessage(message);
  });
}

function open(url, feed) {
  var source = new EventSource(url + '&known=' + encodeURIComponent(knownParam(feed.known)));
  feed.source = source;
  ['row', 'block'].forEach(function (event) {
    source.addEventListener(event, function (e) {
      var id = idOf(e.data);
      if (id !== null) {
        var version = versionOf(e.data);
        feed.known.set(id, version);
        feed.latest.set(id, { event: event, data: e.data, version: version });
      }
      broadcast(feed, { type: event, data: e.data });
    });
  });
  source.addEventListener('gone', function (e) {
    feed.known.delete(e.data);
    feed.latest.set(e.data, { event: 'gone', data: e.data, version: Infinity });
    broadcast(feed, { type: 'gone', data: e.data });
  });
  source.addEventListener('bye', function () {
    // The server ended it (logged out, shutting down): the tabs say so and may reopen.
    stop(url, feed);
    broadcast(feed, { type: 'closed' });
  });
  source.onopen = function () {
    feed.retryMs = 2000;
  };
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (logged out, forbidden): the browser will not retry.
      stop(url, feed);
      broadcast(feed, { type: 'closed' });
      return;
    }
    // Dropped: reopen with what the tabs have been sent (the browser's retry would repeat the first address).
    source.close();
    feed.source = null;
    clearTimeout(feed.retryTimer);
    feed.retryTimer = setTimeout(function () {
      if (feed.ports.size > 0 && !feed.source) open(url, feed);
    }, feed.retryMs);
    feed.retryMs = Math.min(feed.retryMs * 2, 30000);
  };
}

function stop(url, feed) {
  if (feed.source) feed.source.close();
  feed.source = null;
  clearTimeout(feed.retryTimer);
  if (feed.ports.size === 0) feeds.delete(url);
}

function leave(port) {
  var url = watching.get(port);
  watching.delete(port);
  var feed = url && feeds.get(url);
  if (!feed) return;
  feed.ports.delete(port);
  if (feed.ports.size === 0) stop(url, feed);
}

function watch(port, url, known) {
  leave(port);
  var feed = feeds.get(url);
  if (!feed) {
    feed = { source: null, ports: new Set(), known: new Map(), latest: new Map(), retryMs: 2000, retryTimer: null };
    for (var id in known) feed.known.set(id, known[id]);
    feeds.set(url, feed);
  }
  feed.ports.add(port);
  watching.set(port, url);
  // What this feed sent before the tab came: the tab keeps what is newer than its own copy.
  feed.latest.forEach(function (entry, id) {
    var mine = Object.prototype.hasOwnProperty.call(known, id) ? known[id] : null;
    if (entry.event === 'gone') {
      if (mine !== null) port.postMessage({ type: 'gone', data: id });
    } else if (mine === null || entry.version > mine) {
      port.postMessage({ type: entry.event, data: entry.data });
    }
  });
  if (!feed.source) open(url, feed);
}

self.onconnect = function (event) {
  var port = event.ports[0];
  port.onmessage = function (e) {
    var message = e.data || {};
    if (message.type === 'watch' && typeof message.url === 'string' && message.url.charAt(0) === '/')
      watch(port, message.url, message.known || {});
    else if (message.type === 'leave') leave(port);
  };
  port.start();
};
