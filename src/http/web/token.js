// Only on the sign-in shell (api.token set): keep the token in this tab's sessionStorage, load
// the page with it as a bearer header and show the answer; send "Run now" to the API the same
// way. The token never goes into a URL.
(() => {
  const KEY = 'dms-api-token';
  const token = () => sessionStorage.getItem(KEY);
  const auth = () => ({ Authorization: 'Bearer ' + token() });
  const say = (text) => {
    const m = document.getElementById('login-msg');
    if (m) m.textContent = text;
  };
  let timer;
  async function load() {
    clearTimeout(timer);
    if (!token()) return;
    say('Loading…');
    let r;
    try {
      r = await fetch(location.pathname + location.search, { headers: auth(), cache: 'no-store' });
    } catch (e) {
      say('The daemon did not answer: ' + e.message);
      timer = setTimeout(load, 10000);
      return;
    }
    if (r.status === 401) {
      sessionStorage.removeItem(KEY);
      if (!document.getElementById('login')) location.reload();
      else say('That token was not accepted.');
      return;
    }
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    document.title = doc.title;
    document.body.replaceWith(document.adoptNode(doc.body));
    history.replaceState(null, '', document.body.dataset.self || '/');
    const every = Number(document.body.dataset.refresh || 0);
    if (every > 0) timer = setTimeout(load, every * 1000);
  }
  document.addEventListener('submit', async (e) => {
    const f = e.target;
    if (f.id === 'login') {
      e.preventDefault();
      sessionStorage.setItem(KEY, f.elements.token.value.trim());
      f.reset();
      load();
    } else if (f.dataset.task && token()) {
      e.preventDefault();
      const r = await fetch('/api/dms/tasks/' + encodeURIComponent(f.dataset.task) + '/run',
        { method: 'POST', headers: auth() });
      if (r.status === 401) {
        sessionStorage.removeItem(KEY);
        location.reload();
        return;
      }
      const result = { 202: 'started', 409: 'running', 404: 'unknown' }[r.status] || 'stopping';
      const q = new URLSearchParams(location.search);
      q.set('ran', f.dataset.task);
      q.set('result', result);
      history.replaceState(null, '', '/?' + q);
      load();
    }
  });
  document.addEventListener('click', async (e) => {
    if (e.target.closest('#forget')) {
      sessionStorage.removeItem(KEY);
      location.reload();
      return;
    }
    const a = e.target.closest('a[data-api]');
    if (a && token()) {
      e.preventDefault();
      const r = await fetch(a.href, { headers: auth() });
      location.href = URL.createObjectURL(new Blob([await r.text()], { type: 'text/plain' }));
    }
  });
  document.addEventListener('DOMContentLoaded', load);
})();
