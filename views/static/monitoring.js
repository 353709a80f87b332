// Training monitoring: one echarts chart of lr (green), loss (blue) and test_accuracy
// (red) against the step, each on its own y-axis. Non-finite values arrive as strings
// ("NaN", "Infinity", "-Infinity"); they become breaks in the line with a marked step,
// never a silent gap. While a run is active the data is polled again; once every run
// shown is final, polling stops.
(function () {
  'use strict';
  var el = document.getElementById('chart');
  var dataEl = document.getElementById('chart-data');
  if (!el || !dataEl || !window.echarts) return;
  var data = JSON.parse(dataEl.textContent || 'null');
  if (!data) return;

  var NAMES = ['lr', 'loss', 'test_accuracy'];
  var AXIS = { loss: 0, test_accuracy: 1, lr: 2 };
  var SYMBOL = { NaN: 'NaN', Infinity: '+∞', '-Infinity': '−∞' };
  var chart = window.echarts.init(el, null, { renderer: 'canvas' });
  var timer = null;
  var inFlight = false;
  var emptyShown = false;

  function decode(value) {
    if (value === 'NaN') return NaN;
    if (value === 'Infinity') return Infinity;
    if (value === '-Infinity') return -Infinity;
    return value;
  }

  // Points for echarts: a non-finite value is '-' (a break in the line), and its step
  // is returned so the break gets a visible marker.
  // Consecutive non-finite points make one break: marked where it starts, shaded to where it ends.
  function points(raw) {
    var out = [];
    var breaks = [];
    var open = null;
    for (var i = 0; i < raw.length; i++) {
      var v = decode(raw[i][1]);
      if (typeof v === 'number' && isFinite(v)) {
        out.push([raw[i][0], v]);
        open = null;
      } else {
        out.push([raw[i][0], '-']);
        var label = SYMBOL[raw[i][1]] || String(raw[i][1]);
        if (open && open.label === label) open.end = raw[i][0];
        else {
          open = { start: raw[i][0], end: raw[i][0], label: label };
          breaks.push(open);
        }
      }
    }
    return { data: out, breaks: breaks };
  }

  function seriesOf(d) {
    var series = [];
    d.runs.forEach(function (run, r) {
      NAMES.forEach(function (name) {
        var p = points((run.series && run.series[name]) || []);
        var label = r === 0 ? name : name + ' · ' + d.labels.run + ' ' + run.number;
        series.push({
          id: name + '-' + run.number,
          name: label,
          type: 'line',
          yAxisIndex: AXIS[name],
          data: p.data,
          showSymbol: false,
          connectNulls: false,
          sampling: 'lttb',
          color: d.colors[name],
          itemStyle: { color: d.colors[name] },
          lineStyle: {
            color: d.colors[name],
            width: r === 0 ? 1.8 : 1.4,
            type: r === 0 ? 'solid' : 'dashed',
            opacity: r === 0 ? 1 : 0.6,
          },
          emphasis: { focus: 'series' },
          markLine: p.breaks.length
            ? {
                symbol: 'none',
                silent: true,
                lineStyle: { color: '#c2332b', type: 'dashed', width: 1.2 },
                label: { formatter: name + ' ' + '{b}', color: '#c2332b', position: 'insideEndTop' },
                data: p.breaks.slice(0, 20).map(function (b) {
                  return { xAxis: b.start, name: b.label };
                }),
              }
            : undefined,
          markArea: p.breaks.length
            ? {
                silent: true,
                itemStyle: { color: 'rgba(194, 51, 43, 0.08)' },
                data: p.breaks.slice(0, 20).map(function (b) {
                  return [{ xAxis: b.start }, { xAxis: b.end }];
                }),
              }
            : undefined,
        });
      });
    });
    return series;
  }

  function axis(name, color, position, offset, extra) {
    var a = {
      type: 'value',
      name: name,
      position: position,
      offset: offset,
      alignTicks: false,
      scale: true,
      nameTextStyle: { color: color, fontWeight: 600 },
      axisLine: { show: true, lineStyle: { color: color } },
      axisLabel: { color: color },
      splitLine: { show: position === 'left', lineStyle: { color: '#eef0f4' } },
    };
    for (var k in extra) a[k] = extra[k];
    return a;
  }

  function render(d, first) {
    var option = {
      animation: false,
      color: [d.colors.lr, d.colors.loss, d.colors.test_accuracy],
      grid: { left: 64, right: 120, top: 48, bottom: 84 },
      tooltip: {
        trigger: 'axis',
        axisPointer: { type: 'cross', label: { backgroundColor: '#1d2330' } },
        valueFormatter: function (v) {
          return typeof v === 'number'
            ? Math.abs(v) < 1e-3 && v !== 0
              ? v.toExponential(3)
              : Number(v.toPrecision(5))
            : 'NaN';
        },
      },
      legend: { top: 8, type: 'scroll' },
      xAxis: {
        type: 'value',
        name: d.labels.step,
        nameLocation: 'middle',
        nameGap: 28,
        min: 'dataMin',
        max: 'dataMax',
        splitLine: { show: false },
      },
      yAxis: [
        axis('loss', d.colors.loss, 'left', 0, {}),
        axis('test_accuracy', d.colors.test_accuracy, 'right', 0, { min: 0, max: 1, scale: false }),
        axis('lr', d.colors.lr, 'right', 64, {
          axisLabel: {
            color: d.colors.lr,
            formatter: function (v) {
              return v === 0 ? '0' : v.toExponential(1);
            },
          },
        }),
      ],
      dataZoom: [
        { type: 'inside', xAxisIndex: 0, filterMode: 'none' },
        { type: 'slider', xAxisIndex: 0, filterMode: 'none', height: 22, bottom: 16 },
      ],
      series: seriesOf(d),
    };
    // Later updates keep the user's zoom and legend choices.
    if (first) chart.setOption(option, { notMerge: true });
    else chart.setOption({ series: option.series }, { replaceMerge: ['series'] });
    renderWarnings(d);
    // The badge follows the run shown (the page's first run).
    var badge = document.querySelector('#run-status .badge');
    if (badge && d.runs[0] && !first) {
      badge.className = 'badge ' + d.runs[0].status;
      badge.setAttribute('data-status', d.runs[0].status);
      badge.textContent = d.runs[0].statusLabel;
    }
    var state = document.getElementById('chart-state');
    if (state) state.textContent = d.live ? d.labels.live : d.labels.final;
    var empty = d.runs.every(function (run) {
      return NAMES.every(function (n) {
        return !run.series[n] || run.series[n].length === 0;
      });
    });
    if (empty !== emptyShown) {
      chart.setOption({
        graphic: empty
          ? [
              {
                id: 'empty',
                type: 'text',
                left: 'center',
                top: 'middle',
                style: { text: d.labels.noPoints, fill: '#667085', fontSize: 14 },
              },
            ]
          : [{ id: 'empty', $action: 'remove' }],
      });
      emptyShown = empty;
    }
  }

  function renderWarnings(d) {
    var box = document.getElementById('chart-warnings');
    if (!box) return;
    box.innerHTML = '';
    d.warnings.forEach(function (w) {
      var p = document.createElement('p');
      p.className = 'warning';
      p.textContent = '⚠ ' + w;
      box.appendChild(p);
    });
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (data.live && !document.hidden) timer = setTimeout(poll, data.pollMs || 3000);
  }

  function poll() {
    if (inFlight) return;
    inFlight = true;
    fetch(el.getAttribute('data-url'), { headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (d) {
        data = d;
        render(d, false);
      })
      .catch(function () {
        // Try again at the next interval; a page left open does not stack requests.
      })
      .then(function () {
        inFlight = false;
        schedule();
      });
  }

  try {
    render(data, true);
  } finally {
    schedule();
  }
  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (data.live && !timer && !inFlight) poll();
  });
  window.addEventListener('resize', function () {
    chart.resize();
  });
})();
