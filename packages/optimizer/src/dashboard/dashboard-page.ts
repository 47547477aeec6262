/**
 * The dashboard page and its script. The script polls the JSON API once a second and redraws a
 * chart only when its spec changed, so the page follows profiling, plan changes and stragglers
 * without a reload. Charts are drawn by the vendored Vega/Vega-Lite builds from the same specs
 * `perseus plan` and `perseus demo` render to SVG.
 */
export const DASHBOARD_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Perseus optimizer</title>
<style>
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 18px 0 6px; }
.note { color: #666; font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
tr.job { cursor: pointer; }
tr.job.selected { background: #eef4ff; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
.chart { min-height: 60px; }
#timeline { max-width: 100%; overflow-x: auto; }
#events { font-size: 12px; max-height: 260px; overflow-y: auto; border: 1px solid #ddd; padding: 6px 10px; list-style: none; margin: 0; }
#events li { padding: 1px 0; }
#events .kind { display: inline-block; width: 76px; color: #555; }
.simulated { color: #8a5a00; }
</style>
</head>
<body>
<h1>Perseus optimizer</h1>
<div class="note">Read-only view; refreshes every second. <span id="updated"></span></div>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>job</th><th>phase</th><th>plan version</th><th>GPUs</th><th>simulated or real</th><th>predicted saving</th><th>ranks live / registered</th><th>state</th></tr></thead><tbody></tbody></table>
<section id="job" hidden>
<h2 id="job-title"></h2>
<div id="job-meta" class="note"></div>
<div class="charts">
<div id="frontier" class="chart"></div>
<div id="iterations" class="chart"></div>
</div>
<h2>Deployed plan per stage</h2>
<div id="timeline" class="chart"></div>
<h2>Events</h2>
<ul id="events"></ul>
</section>
<script src="vendor/vega.min.js"></script>
<script src="vendor/vega-lite.min.js"></script>
<script src="dashboard.js"></script>
</body>
</html>
`;

export const DASHBOARD_PAGE_SCRIPT = `'use strict';
(function () {
  var selected = new URLSearchParams(location.search).get('job');
  // A token in the URL fragment (#token=…) goes to the API as a bearer token; fragments never
  // reach the server.
  var token = (/(?:^#|&)token=([^&]+)/.exec(location.hash) || [])[1];
  var headers = token ? { authorization: 'Bearer ' + decodeURIComponent(token) } : {};
  var drawn = {};
  var views = {};
  function getJSON(url) {
    return fetch(url, { cache: 'no-store', headers: headers }).then(function (r) {
      if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
      return r.json();
    });
  }
  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }
  function word(phase) { return String(phase).toLowerCase(); }
  function renderJobs(jobs) {
    var body = document.querySelector('#jobs tbody');
    body.textContent = '';
    jobs.forEach(function (j) {
      var s = j.summary;
      var tr = document.createElement('tr');
      tr.className = 'job' + (s.jobId === selected ? ' selected' : '');
      tr.dataset.job = s.jobId;
      tr.dataset.version = String(s.version);
      [s.jobId, word(s.phase), 'v' + s.version, s.worldSize + ' × ' + j.gpu,
       s.simulated ? 'simulated' : 'real', s.predictedSavingPercent.toFixed(2) + ' %',
       s.liveRanks + ' / ' + s.registeredRanks, s.finished ? 'finished' : 'running']
        .forEach(function (v, i) { tr.appendChild(text('td', v, i === 4 && s.simulated ? 'simulated' : '')); });
      tr.addEventListener('click', function () {
        selected = s.jobId;
        history.replaceState(null, '', '?job=' + encodeURIComponent(selected) + location.hash);
        tick();
      });
      body.appendChild(tr);
    });
  }
  function draw(id, spec, empty) {
    var key = spec ? JSON.stringify(spec) : '';
    if (drawn[id] === key) return;
    drawn[id] = key;
    var el = document.getElementById(id);
    if (views[id]) { views[id].finalize(); delete views[id]; }
    el.textContent = '';
    if (!spec) { el.appendChild(text('div', empty, 'note')); return; }
    var view = new vega.View(vega.parse(vegaLite.compile(spec).spec), {
      renderer: 'svg', container: el, hover: true
    });
    views[id] = view;
    view.runAsync().then(function () { el.dataset.rendered = String(Date.now()); });
  }
  function renderJob(v) {
    var s = v.summary;
    document.getElementById('job').hidden = false;
    document.getElementById('job-title').textContent = 'Job ' + s.jobId + ' — ' + word(s.phase) + ', plan v' + s.version;
    var meta = document.getElementById('job-meta');
    meta.dataset.version = String(s.version);
    meta.dataset.phase = s.phase;
    meta.textContent = v.shape + '; ' + v.gpu + '; ' + (s.simulated ? 'EMULATED (simulated GPUs)' : 'measured') +
      '; predicted saving ' + s.predictedSavingPercent.toFixed(2) + ' % vs all-max clocks' +
      (v.stragglers.length ? '; stragglers: ' + v.stragglers.map(function (x) { return 'pipeline ' + x.dpRank; }).join(', ') : '') +
      (v.detail ? '; ' + v.detail : '');
    draw('frontier', v.charts.frontier, 'No frontier yet (profiling or planning).');
    draw('iterations', v.charts.iterations, 'No complete iteration reported yet.');
    draw('timeline', v.charts.timeline, 'No deployed plan (or no profile to time it).');
    var list = document.getElementById('events');
    list.textContent = '';
    v.events.slice().reverse().forEach(function (e) {
      var li = document.createElement('li');
      li.dataset.kind = e.kind;
      li.appendChild(text('span', new Date(e.atMs).toLocaleTimeString(), 'time'));
      li.appendChild(document.createTextNode(' '));
      li.appendChild(text('span', e.kind, 'kind'));
      li.appendChild(document.createTextNode(e.text));
      list.appendChild(li);
    });
  }
  var busy = false;
  function tick() {
    if (busy) return;
    busy = true;
    getJSON('api/jobs').then(function (jobs) {
      if (!selected && jobs.length) selected = jobs[0].summary.jobId;
      renderJobs(jobs);
      if (!selected) return null;
      return getJSON('api/jobs/' + encodeURIComponent(selected)).then(renderJob);
    }).then(function () {
      document.getElementById('updated').textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
    }).catch(function (err) {
      document.getElementById('updated').textContent = String(err);
    }).then(function () { busy = false; });
  }
  tick();
  setInterval(tick, 1000);
})();
`;
