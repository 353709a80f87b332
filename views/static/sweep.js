// The sweep page's "compare": one echarts line per ticked process, the chosen metric
// against the step. The page embeds the curves of the processes ticked when it was
// served; ticking or unticking a box fetches the curves again (/training/sweeps/:id/curves)
// and redraws, without reloading the page. Non-finite values arrive as strings and
// become breaks in the line. Without scripts the Compare button reloads the page.
(function () {
  'use strict';
  var dataEl = document.getElementById('compare-data');
  var section = document.getElementById('compare-section');
  var el = document.getElementById('compare-chart');
  var form = document.getElementById('sweep-compare');
  if (!dataEl || !section || !el || !form || !window.echarts) return;
  var data = JSON.parse(dataEl.textContent || 'null');
  if (!data) return;
  var chart = null;
  var asked = 0;

  function value(v) {
    return typeof v === 'number' && isFinite(v) ? v : '-';
  }

  function render(d) {
    if (d.curves.length === 0) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    if (!chart) chart = window.echarts.init(el, null, { renderer: 'canvas' });
    var empty = d.curves.every(function (c) {
      return c.points.length === 0;
    });
    chart.setOption(
      {
        animation: false,
        grid: { left: 64, right: 32, top: 56, bottom: 84 },
        tooltip: { trigger: 'axis' },
        legend: { top: 8, type: 'scroll' },
        xAxis: {
          type: 'value',
          name: d.labels.step,
          nameLocation: 'middle',
          nameGap: 28,
          min: 'dataMin',
          max: 'dataMax',
        },
        yAxis: { type: 'value', name: d.metric, scale: true },
        dataZoom: [
          { type: 'inside', xAxisIndex: 0, filterMode: 'none' },
          { type: 'slider', xAxisIndex: 0, filterMode: 'none', height: 22, bottom: 16 },
        ],
        graphic: empty
          ? [
              {
                type: 'text',
                left: 'center',
                top: 'middle',
                style: { text: d.labels.noPoints, fill: '#667085', fontSize: 14 },
              },
            ]
          : [],
        series: d.curves.map(function (c) {
          return {
            id: 'process-' + c.processId,
            name: '#' + c.processId + ' ' + c.name + (c.run === null ? '' : ' · ' + d.labels.run + ' ' + c.run),
            type: 'line',
            showSymbol: false,
            connectNulls: false,
            sampling: 'lttb',
            emphasis: { focus: 'series' },
            data: c.points.map(function (p) {
              return [p[0], value(p[1])];
            }),
          };
        }),
      },
      { notMerge: true },
    );
    el.setAttribute('data-series', String(d.curves.length));
  }

  function refresh() {
    var query = new window.URLSearchParams();
    query.set('metric', data.metric);
    form.querySelectorAll('input[name="compare"]:checked').forEach(function (box) {
      query.append('compare', box.value);
    });
    var mine = ++asked;
    fetch(data.url + '?' + query.toString(), { headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (d) {
        if (mine !== asked) return; // a later tick's answer wins
        d.url = data.url;
        d.labels = data.labels;
        data = d;
        render(d);
      })
      .catch(function () {
        // The Compare button still works: it reloads the page with the ticked processes.
      });
  }

  form.addEventListener('change', function (event) {
    if (event.target && event.target.name === 'compare') refresh();
  });
  window.addEventListener('resize', function () {
    if (chart) chart.resize();
  });
  render(data);
})();
