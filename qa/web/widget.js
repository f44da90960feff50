/*
 * Technopolis QA chat widget.
 *
 * Embed with one tag:
 *   <script src="https://host/widget.js" data-api="https://host" data-lang="auto" defer></script>
 *
 * Everything lives under <div id="tqa-root"> and every class starts with "tqa-".
 * Text that comes from the API or from the sources is only ever inserted as text nodes
 * (textContent / createTextNode); the widget never builds HTML from strings, uses no
 * inline styles or scripts, and so runs under a strict Content-Security-Policy.
 */
(function () {
  'use strict';

  if (typeof window === 'undefined' || typeof document === 'undefined') return;
  if (document.getElementById('tqa-root')) return; // loaded twice: keep the first

  // ---------------------------------------------------------------- configuration

  var script = document.currentScript;
  if (!script) {
    var candidates = document.querySelectorAll('script[src]');
    for (var ci = candidates.length - 1; ci >= 0; ci--) {
      if (/widget\.js(?:[?#].*)?$/.test(candidates[ci].getAttribute('src') || '')) {
        script = candidates[ci];
        break;
      }
    }
  }

  var scriptUrl;
  try {
    scriptUrl = new URL(script && script.src ? script.src : 'widget.js', document.baseURI);
  } catch (e) {
    scriptUrl = new URL(window.location.href);
  }

  function resolveApiBase() {
    var raw = script ? script.getAttribute('data-api') : null;
    raw = raw == null ? '' : String(raw).trim();
    if (!raw) return scriptUrl.origin;
    try {
      var u = new URL(raw, scriptUrl.href);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return scriptUrl.origin;
      return (u.origin + u.pathname).replace(/\/+$/, '');
    } catch (e) {
      return scriptUrl.origin;
    }
  }

  var API = resolveApiBase();
  var CSS_HREF = new URL('widget.css', scriptUrl.href).href;
  var LANG_SETTING = (function () {
    var v = script ? String(script.getAttribute('data-lang') || '').trim().toLowerCase() : '';
    return v === 'en' || v === 'ru' ? v : 'auto';
  })();

  var STORAGE_KEY = 'tqa-conversation-v1';
  var HISTORY_TURNS = 3;
  var MAX_STORED_TURNS = 60;
  var ASK_TIMEOUT_MS = 45000;
  var FETCH_TIMEOUT_MS = 20000;

  // ---------------------------------------------------------------- strings

  var STRINGS = {
    en: {
      title: 'Technopolis QA',
      launcherOpen: 'Open Technopolis QA chat',
      launcherClose: 'Close Technopolis QA chat',
      closePanel: 'Close chat',
      newConv: 'New conversation',
      intro: 'Ask a question about Technopolis Moscow in English or Russian. ' +
        'Answers are quoted from the sources.',
      startersLabel: 'Suggested questions',
      logLabel: 'Conversation',
      inputLabel: 'Your question',
      placeholder: 'Ask about Technopolis Moscow…',
      send: 'Send',
      typing: 'Searching the sources…',
      you: 'You',
      sources: 'Sources',
      seeAlso: 'See also',
      declinedFallback: 'I could not find an answer to that in the sources.',
      srcLang: { en: 'source in English', ru: 'source in Russian' },
      feedbackLabel: 'Was this answer helpful?',
      helpful: 'Helpful',
      notHelpful: 'Not helpful',
      thanks: 'Thanks for the feedback!',
      fbError: 'Could not send the feedback.',
      errorGeneric: 'Sorry, something went wrong. Please try again.',
      errorNetwork: 'Sorry, the service cannot be reached. Check your connection and try again.',
      errorTimeout: 'Sorry, the answer is taking too long. Please try again.',
      errorRate: 'Too many questions in a short time. Please wait a moment and try again.',
      errorRateSeconds: 'Too many questions in a short time. Please try again in {s} s.',
      errorBad: 'Sorry, this question could not be processed.',
      errorServer: 'Sorry, the service is having trouble right now. Please try again later.',
      errorInterrupted: 'The answer was interrupted. Please try again.',
      errorDetail: 'Server message:',
      retry: 'Try again',
      viewerLoading: 'Loading the source…',
      viewerError: 'Sorry, the source could not be loaded.',
      viewerClose: 'Close the source',
      viewerOriginal: 'Original page:',
      viewerLang: { en: 'In English', ru: 'In Russian' },
      page: 'p. ',
      viewerPage: 'Quoted from p. '
    },
    ru: {
      title: 'Вопросы о Технополисе',
      launcherOpen: 'Открыть чат «Вопросы о Технополисе»',
      launcherClose: 'Закрыть чат «Вопросы о Технополисе»',
      closePanel: 'Закрыть чат',
      newConv: 'Новый разговор',
      intro: 'Задайте вопрос о Технополисе «Москва» на русском или английском. ' +
        'Ответы цитируются из источников.',
      startersLabel: 'Примеры вопросов',
      logLabel: 'Разговор',
      inputLabel: 'Ваш вопрос',
      placeholder: 'Спросите о Технополисе…',
      send: 'Отправить',
      typing: 'Ищу в источниках…',
      you: 'Вы',
      sources: 'Источники',
      seeAlso: 'См. также',
      declinedFallback: 'В источниках не нашлось ответа на этот вопрос.',
      srcLang: { en: 'источник на английском', ru: 'источник на русском' },
      feedbackLabel: 'Ответ был полезен?',
      helpful: 'Полезно',
      notHelpful: 'Бесполезно',
      thanks: 'Спасибо за отзыв!',
      fbError: 'Не удалось отправить отзыв.',
      errorGeneric: 'Извините, что-то пошло не так. Попробуйте ещё раз.',
      errorNetwork: 'Извините, сервис недоступен. Проверьте подключение и попробуйте ещё раз.',
      errorTimeout: 'Извините, ответ готовится слишком долго. Попробуйте ещё раз.',
      errorRate: 'Слишком много вопросов за короткое время. Подождите немного и попробуйте снова.',
      errorRateSeconds: 'Слишком много вопросов за короткое время. Попробуйте снова через {s} с.',
      errorBad: 'Извините, этот вопрос не удалось обработать.',
      errorServer: 'Извините, у сервиса временные неполадки. Попробуйте позже.',
      errorInterrupted: 'Ответ был прерван. Попробуйте ещё раз.',
      errorDetail: 'Сообщение сервера:',
      retry: 'Повторить',
      viewerLoading: 'Загружаю источник…',
      viewerError: 'Извините, не удалось загрузить источник.',
      viewerClose: 'Закрыть источник',
      viewerOriginal: 'Оригинал:',
      viewerLang: { en: 'На английском', ru: 'На русском' },
      page: 'с. ',
      viewerPage: 'Цитата со с. '
    }
  };

  var STARTERS = [
    { lang: 'en', text: 'Where is Technopolis Moscow located?' },
    { lang: 'en', text: 'What incentives do Technopolis residents get?' },
    { lang: 'ru', text: 'Когда был основан Технополис Москва?' },
    { lang: 'ru', text: 'Сколько новых рабочих мест появилось в компаниях-резидентах в 2024 году?' }
  ];

  function normLang(l) {
    return l === 'ru' || l === 'en' ? l : null;
  }

  function detectLang(text) {
    return /[\u0400-\u04FF\u0500-\u052F]/.test(String(text || '')) ? 'ru' : 'en';
  }

  function browserLang() {
    var list = [];
    try {
      if (navigator.languages && navigator.languages.length) list = navigator.languages;
      else if (navigator.language) list = [navigator.language];
    } catch (e) { /* ignore */ }
    return list.length && /^ru/i.test(String(list[0])) ? 'ru' : 'en';
  }

  function t(lang, key) {
    var table = STRINGS[normLang(lang) || 'en'];
    return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : STRINGS.en[key];
  }

  // ---------------------------------------------------------------- state

  function emptyState() {
    return { v: 1, open: false, lang: null, turns: [] };
  }

  function loadState() {
    var raw = null;
    try {
      raw = window.sessionStorage.getItem(STORAGE_KEY);
    } catch (e) {
      return emptyState();
    }
    if (!raw) return emptyState();
    try {
      var s = JSON.parse(raw);
      if (!s || typeof s !== 'object' || !Array.isArray(s.turns)) return emptyState();
      var out = emptyState();
      out.open = s.open === true;
      out.lang = normLang(s.lang);
      for (var i = 0; i < s.turns.length; i++) {
        var turn = s.turns[i];
        if (!turn || typeof turn !== 'object') continue;
        if (turn.t === 'user' && typeof turn.text === 'string') {
          out.turns.push({ t: 'user', text: turn.text, lang: normLang(turn.lang) || detectLang(turn.text) });
        } else if (turn.t === 'bot' && turn.data && typeof turn.data === 'object') {
          out.turns.push({
            t: 'bot',
            q: typeof turn.q === 'string' ? turn.q : '',
            data: normalizeAnswer(turn.data, turn.q),
            rating: turn.rating === 'up' || turn.rating === 'down' ? turn.rating : null,
            fb: turn.fb === 'sent' ? 'sent' : null
          });
        } else if (turn.t === 'error' && typeof turn.kind === 'string') {
          out.turns.push({
            t: 'error',
            kind: turn.kind,
            lang: normLang(turn.lang) || 'en',
            detail: typeof turn.detail === 'string' ? turn.detail : '',
            retryAfter: typeof turn.retryAfter === 'number' ? turn.retryAfter : null,
            q: typeof turn.q === 'string' ? turn.q : ''
          });
        }
      }
      // A question asked just before a reload never got its answer.
      var last = out.turns[out.turns.length - 1];
      if (last && last.t === 'user') {
        out.turns.push({ t: 'error', kind: 'interrupted', lang: last.lang, detail: '', retryAfter: null, q: last.text });
      }
      return out;
    } catch (e) {
      return emptyState();
    }
  }

  function saveState() {
    if (state.turns.length > MAX_STORED_TURNS) {
      state.turns = state.turns.slice(state.turns.length - MAX_STORED_TURNS);
    }
    try {
      window.sessionStorage.setItem(STORAGE_KEY, JSON.stringify(state));
    } catch (e) { /* storage full or unavailable: keep going without it */ }
  }

  function str(v) {
    return typeof v === 'string' ? v : null;
  }

  function normalizeCitation(c, i) {
    if (!c || typeof c !== 'object') return null;
    var docId = str(c.doc_id);
    if (!docId) return null;
    var n = typeof c.n === 'number' && isFinite(c.n) ? c.n : i + 1;
    return {
      n: n,
      doc_id: docId,
      title: str(c.title) || docId,
      url: str(c.url),
      date: /^\d{4}-\d{2}-\d{2}$/.test(str(c.date) || '') ? c.date : null,
      // the page of a source imported from a PDF
      page: typeof c.page === 'number' && c.page >= 1 && c.page === Math.floor(c.page) ? c.page : null,
      lang: normLang(c.lang),
      start: typeof c.start === 'number' && isFinite(c.start) ? c.start : null,
      end: typeof c.end === 'number' && isFinite(c.end) ? c.end : null,
      quote: str(c.quote)
    };
  }

  function normalizeCitations(list) {
    var out = [];
    if (!Array.isArray(list)) return out;
    for (var i = 0; i < list.length; i++) {
      var c = normalizeCitation(list[i], i);
      if (c) out.push(c);
    }
    return out;
  }

  function normalizeAnswer(d, question) {
    var q = str(d.question) || str(question) || '';
    var answer = str(d.answer);
    return {
      answer_id: str(d.answer_id),
      question: q,
      lang: normLang(d.lang) || detectLang(q),
      abstained: d.abstained === true || answer === null,
      answer: answer,
      short_answer: str(d.short_answer),
      confidence: typeof d.confidence === 'number' ? d.confidence : null,
      citations: normalizeCitations(d.citations),
      message: str(d.message),
      see_also: normalizeCitations(d.see_also)
    };
  }

  var state = loadState();
  var pending = false;

  function uiLang() {
    if (LANG_SETTING !== 'auto') return LANG_SETTING;
    return state.lang || browserLang();
  }

  // ---------------------------------------------------------------- DOM helpers

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var uid = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function nextId(prefix) {
    uid += 1;
    return prefix + '-' + uid;
  }

  function icon(pathData, extraClass) {
    var svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '20');
    svg.setAttribute('height', '20');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'tqa-icon' + (extraClass ? ' ' + extraClass : ''));
    var path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', pathData);
    path.setAttribute('fill', 'currentColor');
    svg.appendChild(path);
    return svg;
  }

  var ICON_CHAT = 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z';
  var ICON_X = 'M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12 19 6.4 17.6 5 12 10.6z';
  var ICON_SEND = 'M3.4 20.4 21 12 3.4 3.6 3.4 10.2 15 12 3.4 13.8z';
  var ICON_THUMB = 'M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L13.17 1 6.59 7.59C6.22 7.95 6 8.45 6 9v10a2 2 0 0 0 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z';
  var ICON_NEW = 'M12 5V2L8 6l4 4V7a5 5 0 1 1-5 5H5a7 7 0 1 0 7-7z';

  // Elements whose text or attributes follow the interface language.
  var bindings = [];

  function bind(node, what, key) {
    bindings.push({ node: node, what: what, key: key });
    applyBinding(bindings[bindings.length - 1], uiLang());
    return node;
  }

  function applyBinding(b, lang) {
    var value = t(lang, b.key);
    if (b.what === 'text') b.node.textContent = value;
    else b.node.setAttribute(b.what, value);
  }

  // ---------------------------------------------------------------- build the widget

  var root = el('div');
  root.id = 'tqa-root';
  root.className = 'tqa-root';

  var launcher = el('button', 'tqa-launcher');
  launcher.type = 'button';
  launcher.setAttribute('aria-expanded', 'false');
  launcher.appendChild(icon(ICON_CHAT, 'tqa-icon-open'));
  launcher.appendChild(icon(ICON_X, 'tqa-icon-close'));

  var panel = el('div', 'tqa-panel');
  panel.id = 'tqa-panel';
  panel.hidden = true;
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-modal', 'false');
  launcher.setAttribute('aria-controls', panel.id);

  var header = el('div', 'tqa-header');
  var title = el('h2', 'tqa-title');
  title.id = 'tqa-title';
  bind(title, 'text', 'title');
  panel.setAttribute('aria-labelledby', title.id);

  var headerActions = el('div', 'tqa-header-actions');
  var newBtn = el('button', 'tqa-new tqa-header-btn');
  newBtn.type = 'button';
  newBtn.appendChild(icon(ICON_NEW));
  var newLabel = el('span', 'tqa-new-label');
  bind(newLabel, 'text', 'newConv');
  newBtn.appendChild(newLabel);

  var closeBtn = el('button', 'tqa-close tqa-header-btn tqa-icon-btn');
  closeBtn.type = 'button';
  closeBtn.appendChild(icon(ICON_X));
  bind(closeBtn, 'aria-label', 'closePanel');
  bind(closeBtn, 'title', 'closePanel');

  headerActions.appendChild(newBtn);
  headerActions.appendChild(closeBtn);
  header.appendChild(title);
  header.appendChild(headerActions);

  var body = el('div', 'tqa-body');

  var welcome = el('div', 'tqa-welcome');
  var intro = el('p', 'tqa-intro');
  bind(intro, 'text', 'intro');
  var startersWrap = el('div', 'tqa-starters');
  startersWrap.setAttribute('role', 'group');
  bind(startersWrap, 'aria-label', 'startersLabel');
  STARTERS.forEach(function (s) {
    var b = el('button', 'tqa-starter', s.text);
    b.type = 'button';
    b.lang = s.lang;
    b.addEventListener('click', function () {
      ask(s.text);
      input.focus();
    });
    startersWrap.appendChild(b);
  });
  welcome.appendChild(intro);
  welcome.appendChild(startersWrap);

  var log = el('div', 'tqa-log');
  log.setAttribute('role', 'log');
  log.setAttribute('aria-live', 'polite');
  log.setAttribute('aria-relevant', 'additions');
  bind(log, 'aria-label', 'logLabel');

  body.appendChild(welcome);
  body.appendChild(log);

  var form = el('form', 'tqa-form');
  form.setAttribute('novalidate', '');
  var inputId = nextId('tqa-input');
  var inputLabel = el('label', 'tqa-sr-only');
  inputLabel.htmlFor = inputId;
  bind(inputLabel, 'text', 'inputLabel');
  var input = el('textarea', 'tqa-input');
  input.id = inputId;
  input.rows = 1;
  input.setAttribute('autocomplete', 'off');
  bind(input, 'placeholder', 'placeholder');
  var sendBtn = el('button', 'tqa-send tqa-icon-btn');
  sendBtn.type = 'submit';
  sendBtn.appendChild(icon(ICON_SEND));
  bind(sendBtn, 'aria-label', 'send');
  bind(sendBtn, 'title', 'send');
  form.appendChild(inputLabel);
  form.appendChild(input);
  form.appendChild(sendBtn);

  panel.appendChild(header);
  panel.appendChild(body);
  panel.appendChild(form);

  // The toggle comes first so that Tab moves from it into the panel it opens.
  root.appendChild(launcher);
  root.appendChild(panel);

  // ---------------------------------------------------------------- language

  var currentLang = null;

  function applyLang(lang) {
    lang = normLang(lang) || 'en';
    currentLang = lang;
    root.setAttribute('lang', lang);
    for (var i = 0; i < bindings.length; i++) applyBinding(bindings[i], lang);
    launcher.setAttribute('aria-label', t(lang, isOpen() ? 'launcherClose' : 'launcherOpen'));
    launcher.setAttribute('title', t(lang, 'title'));
  }

  // ---------------------------------------------------------------- panel open / close

  function isOpen() {
    return !panel.hidden;
  }

  function setOpen(open, opts) {
    opts = opts || {};
    panel.hidden = !open;
    root.classList.toggle('tqa-is-open', open);
    launcher.setAttribute('aria-expanded', open ? 'true' : 'false');
    launcher.setAttribute('aria-label', t(currentLang, open ? 'launcherClose' : 'launcherOpen'));
    if (state.open !== open) {
      state.open = open;
      saveState();
    }
    if (open) {
      scrollToBottom();
      if (opts.focus !== false) input.focus();
    } else {
      if (viewer) closeViewer(false);
      if (opts.focus !== false) launcher.focus();
    }
  }

  launcher.addEventListener('click', function () {
    setOpen(!isOpen());
  });
  closeBtn.addEventListener('click', function () {
    setOpen(false);
  });

  // ---------------------------------------------------------------- rendering messages

  function updateWelcome() {
    welcome.hidden = state.turns.length > 0;
  }

  function scrollToBottom() {
    body.scrollTop = body.scrollHeight;
  }

  function scrollToMessage(node) {
    // Show the start of a new answer; it may be taller than the visible area.
    var top = node.offsetTop - 8;
    var bottomAligned = body.scrollHeight - body.clientHeight;
    body.scrollTop = Math.max(0, Math.min(top, bottomAligned));
  }

  function renderUser(turn) {
    var m = el('div', 'tqa-msg tqa-msg-user');
    m.lang = turn.lang;
    var p = el('p', 'tqa-msg-text', turn.text);
    m.appendChild(p);
    return m;
  }

  function renderAnswerText(data) {
    var p = el('p', 'tqa-answer');
    var answer = data.answer || '';
    var short = data.short_answer;
    var at = short ? answer.indexOf(short) : -1;
    if (short && at >= 0) {
      if (at > 0) p.appendChild(document.createTextNode(answer.slice(0, at)));
      p.appendChild(el('mark', 'tqa-short', short));
      if (at + short.length < answer.length) {
        p.appendChild(document.createTextNode(answer.slice(at + short.length)));
      }
    } else {
      p.appendChild(document.createTextNode(answer));
    }
    return p;
  }

  function renderCitationList(list, msgLang, headingKey, wrapClass) {
    var wrap = el('div', wrapClass);
    var headingId = nextId('tqa-h');
    var heading = el('p', 'tqa-cites-heading', t(msgLang, headingKey));
    heading.id = headingId;
    var ul = el('ul', 'tqa-cite-list');
    ul.setAttribute('aria-labelledby', headingId);
    list.forEach(function (c) {
      var li = el('li', 'tqa-cite-item');
      var b = el('button', 'tqa-cite');
      b.type = 'button';
      b.setAttribute('data-n', String(c.n));
      b.setAttribute('data-doc-id', c.doc_id);
      b.appendChild(el('span', 'tqa-cite-n', '[' + c.n + ']'));
      b.appendChild(document.createTextNode(' '));
      b.appendChild(el('span', 'tqa-cite-title', c.title));
      if (c.date) {
        b.appendChild(document.createTextNode(' '));
        b.appendChild(el('span', 'tqa-cite-date', '(' + c.date + ')'));
      }
      if (c.page) {
        b.appendChild(document.createTextNode(' '));
        b.appendChild(el('span', 'tqa-cite-page', t(msgLang, 'page') + c.page));
      }
      if (c.lang) b.lang = c.lang;
      b.addEventListener('click', function () {
        openViewer(c, b, msgLang);
      });
      li.appendChild(b);
      if (c.lang && c.lang !== msgLang) {
        var badge = el('span', 'tqa-badge', t(msgLang, 'srcLang')[c.lang]);
        badge.id = nextId('tqa-badge');
        b.setAttribute('aria-describedby', badge.id);
        li.appendChild(document.createTextNode(' '));
        li.appendChild(badge);
      }
      ul.appendChild(li);
    });
    wrap.appendChild(heading);
    wrap.appendChild(ul);
    return wrap;
  }

  function renderFeedback(turn, msgLang) {
    var data = turn.data;
    var wrap = el('div', 'tqa-fb');
    wrap.setAttribute('role', 'group');
    wrap.setAttribute('aria-label', t(msgLang, 'feedbackLabel'));
    var up = el('button', 'tqa-fb-btn tqa-fb-up tqa-icon-btn');
    up.type = 'button';
    up.appendChild(icon(ICON_THUMB));
    up.setAttribute('aria-label', t(msgLang, 'helpful'));
    up.setAttribute('title', t(msgLang, 'helpful'));
    var down = el('button', 'tqa-fb-btn tqa-fb-down tqa-icon-btn');
    down.type = 'button';
    down.appendChild(icon(ICON_THUMB, 'tqa-icon-flip'));
    down.setAttribute('aria-label', t(msgLang, 'notHelpful'));
    down.setAttribute('title', t(msgLang, 'notHelpful'));
    var status = el('span', 'tqa-fb-status');
    if (turn.fb === 'sent' && turn.rating) status.textContent = t(msgLang, 'thanks');

    function sync() {
      up.setAttribute('aria-pressed', turn.rating === 'up' ? 'true' : 'false');
      down.setAttribute('aria-pressed', turn.rating === 'down' ? 'true' : 'false');
    }
    sync();

    var seq = 0;
    function choose(rating) {
      if (turn.rating === rating) {
        // Pressing the same button again withdraws the choice locally.
        turn.rating = null;
        turn.fb = null;
        status.textContent = '';
        sync();
        saveState();
        return;
      }
      turn.rating = rating;
      turn.fb = null;
      status.textContent = '';
      sync();
      saveState();
      if (!data.answer_id) return;
      var mine = ++seq;
      postJson('/api/feedback', { answer_id: data.answer_id, rating: rating }, FETCH_TIMEOUT_MS)
        .then(function (res) {
          if (mine !== seq) return;
          if (res.ok) {
            turn.fb = 'sent';
            status.textContent = t(msgLang, 'thanks');
            status.classList.remove('tqa-fb-failed');
          } else {
            status.textContent = t(msgLang, 'fbError');
            status.classList.add('tqa-fb-failed');
          }
          saveState();
        });
    }
    up.addEventListener('click', function () { choose('up'); });
    down.addEventListener('click', function () { choose('down'); });

    wrap.appendChild(up);
    wrap.appendChild(down);
    wrap.appendChild(status);
    return wrap;
  }

  function renderBot(turn) {
    var data = turn.data;
    var msgLang = data.lang;
    var m = el('div', 'tqa-msg tqa-msg-bot');
    m.lang = msgLang;
    if (data.answer_id) m.setAttribute('data-answer-id', data.answer_id);

    if (!data.abstained) {
      m.appendChild(renderAnswerText(data));
      if (data.citations.length) {
        m.appendChild(renderCitationList(data.citations, msgLang, 'sources', 'tqa-cites'));
      }
    } else {
      m.appendChild(el('p', 'tqa-declined', data.message || t(msgLang, 'declinedFallback')));
      if (data.see_also.length) {
        m.appendChild(renderCitationList(data.see_also, msgLang, 'seeAlso', 'tqa-see-also'));
      }
      if (data.citations.length) {
        m.appendChild(renderCitationList(data.citations, msgLang, 'sources', 'tqa-cites'));
      }
    }
    if (data.answer_id) m.appendChild(renderFeedback(turn, msgLang));
    return m;
  }

  function errorText(turn) {
    var lang = turn.lang;
    switch (turn.kind) {
      case 'network': return t(lang, 'errorNetwork');
      case 'timeout': return t(lang, 'errorTimeout');
      case 'rate':
        return turn.retryAfter != null
          ? t(lang, 'errorRateSeconds').replace('{s}', String(turn.retryAfter))
          : t(lang, 'errorRate');
      case 'bad': return t(lang, 'errorBad');
      case 'server': return t(lang, 'errorServer');
      case 'interrupted': return t(lang, 'errorInterrupted');
      default: return t(lang, 'errorGeneric');
    }
  }

  function renderError(turn) {
    var m = el('div', 'tqa-msg tqa-msg-bot tqa-error');
    m.lang = turn.lang;
    m.appendChild(el('p', 'tqa-error-text', errorText(turn)));
    if (turn.detail) {
      var d = el('p', 'tqa-error-detail');
      d.appendChild(el('span', 'tqa-error-detail-label', t(turn.lang, 'errorDetail')));
      d.appendChild(document.createTextNode(' '));
      d.appendChild(el('span', 'tqa-error-detail-text', turn.detail));
      m.appendChild(d);
    }
    // A rejected question (4xx) would only be rejected again: it goes back to the input instead.
    if (turn.q && turn.kind !== 'bad') {
      var retry = el('button', 'tqa-retry', t(turn.lang, 'retry'));
      retry.type = 'button';
      retry.addEventListener('click', function () {
        if (pending) return;
        var idx = state.turns.indexOf(turn);
        if (idx >= 0) state.turns.splice(idx, 1);
        if (m.parentNode) m.parentNode.removeChild(m);
        saveState();
        ask(turn.q, { retry: true });
        input.focus();
      });
      m.appendChild(retry);
    }
    return m;
  }

  function renderTurn(turn) {
    if (turn.t === 'user') return renderUser(turn);
    if (turn.t === 'bot') return renderBot(turn);
    return renderError(turn);
  }

  function renderAll() {
    while (log.firstChild) log.removeChild(log.firstChild);
    state.turns.forEach(function (turn) {
      log.appendChild(renderTurn(turn));
    });
    updateWelcome();
  }

  // ---------------------------------------------------------------- typing indicator

  var typing = null;

  function showTyping(lang) {
    hideTyping();
    typing = el('div', 'tqa-msg tqa-typing');
    typing.lang = lang;
    typing.setAttribute('role', 'status');
    var dots = el('span', 'tqa-dots');
    dots.setAttribute('aria-hidden', 'true');
    dots.appendChild(el('span', 'tqa-dot'));
    dots.appendChild(el('span', 'tqa-dot'));
    dots.appendChild(el('span', 'tqa-dot'));
    typing.appendChild(dots);
    typing.appendChild(el('span', 'tqa-sr-only', t(lang, 'typing')));
    log.appendChild(typing);
    scrollToBottom();
  }

  function hideTyping() {
    if (typing && typing.parentNode) typing.parentNode.removeChild(typing);
    typing = null;
  }

  // ---------------------------------------------------------------- network

  function timeoutSignal(ms) {
    if (typeof AbortController === 'undefined') return { signal: undefined, done: function () {} };
    var ctrl = new AbortController();
    var timer = setTimeout(function () { ctrl.abort(); }, ms);
    return { signal: ctrl.signal, done: function () { clearTimeout(timer); }, ctrl: ctrl };
  }

  function parseRetryAfter(v) {
    if (!v) return null;
    var s = String(v).trim();
    if (/^\d+$/.test(s)) return parseInt(s, 10);
    var when = Date.parse(s);
    if (!isNaN(when)) return Math.max(0, Math.ceil((when - Date.now()) / 1000));
    return null;
  }

  function detailText(json) {
    if (!json || typeof json !== 'object') return '';
    var d = json.detail;
    if (typeof d === 'string') return d;
    if (Array.isArray(d)) {
      var msgs = [];
      d.forEach(function (item) {
        if (item && typeof item === 'object' && typeof item.msg === 'string') msgs.push(item.msg);
        else if (typeof item === 'string') msgs.push(item);
      });
      return msgs.join('; ');
    }
    if (d && typeof d === 'object' && typeof d.msg === 'string') return d.msg;
    return '';
  }

  // Resolves (never rejects) to {ok, status, json, kind, retryAfter}.
  function request(path, init, ms) {
    var ts = timeoutSignal(ms);
    init.signal = ts.signal;
    init.credentials = 'omit';
    init.headers = init.headers || {};
    init.headers.Accept = 'application/json';
    var res;
    return fetch(API + path, init)
      .then(function (r) {
        res = r;
        return r.text();
      })
      .then(function (text) {
        ts.done();
        var json = null;
        try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
        var out = { ok: res.ok, status: res.status, json: json, kind: null, retryAfter: null };
        if (!res.ok) {
          if (res.status === 429) {
            out.kind = 'rate';
            out.retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
          } else if (res.status >= 500) {
            out.kind = 'server';
          } else {
            out.kind = 'bad';
          }
        } else if (!json || typeof json !== 'object') {
          out.ok = false;
          out.kind = 'server';
        }
        return out;
      })
      .catch(function (err) {
        ts.done();
        var aborted = err && err.name === 'AbortError';
        return { ok: false, status: 0, json: null, kind: aborted ? 'timeout' : 'network', retryAfter: null };
      });
  }

  function postJson(path, payload, ms) {
    return request(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(payload)
    }, ms);
  }

  function buildHistory() {
    var turns = [];
    for (var i = 0; i < state.turns.length; i++) {
      var turn = state.turns[i];
      if (turn.t !== 'bot') continue;
      turns.push({
        question: turn.q || turn.data.question || '',
        answer: turn.data.abstained ? null : turn.data.answer
      });
    }
    return turns.slice(-HISTORY_TURNS);
  }

  // ---------------------------------------------------------------- asking

  function setPending(on) {
    pending = on;
    sendBtn.disabled = on;
    sendBtn.setAttribute('aria-disabled', on ? 'true' : 'false');
    root.classList.toggle('tqa-is-pending', on);
  }

  function ask(question, opts) {
    opts = opts || {};
    question = String(question || '').trim();
    if (!question || pending) return;

    var qLang = detectLang(question);
    if (LANG_SETTING === 'auto') {
      state.lang = qLang;
      applyLang(qLang);
    }
    var msgLang = LANG_SETTING === 'auto' ? qLang : LANG_SETTING;

    var history = buildHistory();
    if (!opts.retry) {
      var userTurn = { t: 'user', text: question, lang: qLang };
      state.turns.push(userTurn);
      log.appendChild(renderUser(userTurn));
    }
    saveState();
    updateWelcome();
    if (!isOpen()) setOpen(true, { focus: false });

    setPending(true);
    showTyping(msgLang);

    var payload = { question: question };
    if (LANG_SETTING !== 'auto') payload.lang = LANG_SETTING;
    if (history.length) payload.history = history;

    postJson('/api/ask', payload, ASK_TIMEOUT_MS).then(function (res) {
      hideTyping();
      setPending(false);
      var turn;
      if (res.ok) {
        turn = { t: 'bot', q: question, data: normalizeAnswer(res.json, question), rating: null, fb: null };
      } else {
        turn = {
          t: 'error',
          kind: res.kind || 'generic',
          lang: msgLang,
          detail: detailText(res.json),
          retryAfter: res.retryAfter,
          q: question
        };
      }
      state.turns.push(turn);
      saveState();
      if (turn.t === 'error' && turn.kind === 'bad' && !input.value) {
        input.value = question;
        autosize();
      }
      var node = renderTurn(turn);
      log.appendChild(node);
      scrollToMessage(node);
    });
  }

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    if (pending) return;
    var q = input.value.trim();
    if (!q) {
      input.focus();
      return;
    }
    input.value = '';
    autosize();
    ask(q);
    input.focus();
  });

  input.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      if (typeof form.requestSubmit === 'function') form.requestSubmit();
      else form.dispatchEvent(new Event('submit', { cancelable: true }));
    }
  });

  function autosize() {
    input.style.height = 'auto';
    var h = Math.min(input.scrollHeight, 140);
    input.style.height = h + 'px';
  }
  input.addEventListener('input', autosize);

  newBtn.addEventListener('click', function () {
    if (viewer) closeViewer(false);
    state.turns = [];
    saveState();
    hideTyping();
    renderAll();
    input.focus();
  });

  // ---------------------------------------------------------------- source viewer

  var viewer = null; // {overlay, dialog, opener, token}
  var sourceCache = {};

  // Python offsets count code points; JS strings count UTF-16 code units.
  function codePointToIndex(text, cp) {
    if (!(cp > 0)) return 0;
    var i = 0;
    var n = 0;
    var len = text.length;
    while (i < len && n < cp) {
      var c = text.charCodeAt(i);
      if (c >= 0xD800 && c <= 0xDBFF && i + 1 < len) {
        var d = text.charCodeAt(i + 1);
        i += d >= 0xDC00 && d <= 0xDFFF ? 2 : 1;
      } else {
        i += 1;
      }
      n += 1;
    }
    return i;
  }

  function locateSpan(text, c) {
    var start = null;
    var end = null;
    if (c.start != null && c.end != null && c.end >= c.start) {
      start = codePointToIndex(text, c.start);
      end = codePointToIndex(text, c.end);
    }
    var quote = c.quote;
    if (quote && (start == null || text.slice(start, end) !== quote)) {
      // Offsets missing or off: fall back to the occurrence of the quote nearest to them.
      var best = -1;
      var from = 0;
      var target = start == null ? 0 : start;
      for (;;) {
        var at = text.indexOf(quote, from);
        if (at < 0) break;
        if (best < 0 || Math.abs(at - target) < Math.abs(best - target)) best = at;
        from = at + 1;
      }
      if (best >= 0) {
        start = best;
        end = best + quote.length;
      }
    }
    if (start == null || end == null || end <= start || end > text.length) return null;
    return { start: start, end: end };
  }

  function fetchSource(docId) {
    if (!sourceCache[docId]) {
      sourceCache[docId] = request('/api/sources/' + encodeURIComponent(docId), { method: 'GET' }, FETCH_TIMEOUT_MS)
        .then(function (res) {
          if (!res.ok || typeof res.json.text !== 'string') {
            delete sourceCache[docId];
            return { error: res, detail: detailText(res.json) };
          }
          return { source: res.json };
        });
    }
    return sourceCache[docId];
  }

  function safeHttpUrl(raw) {
    if (typeof raw !== 'string') return null;
    var s = raw.trim();
    if (!/^https?:\/\//i.test(s)) return null;
    try {
      var u = new URL(s);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
      return u.href;
    } catch (e) {
      return null;
    }
  }

  function focusables(container) {
    var list = container.querySelectorAll(
      'a[href], button:not([disabled]), textarea, input, select, [tabindex]:not([tabindex="-1"])'
    );
    var out = [];
    for (var i = 0; i < list.length; i++) {
      if (!list[i].hidden && list[i].getClientRects().length) out.push(list[i]);
    }
    return out;
  }

  function openViewer(c, opener, msgLang) {
    if (viewer) closeViewer(false);
    var lang = msgLang || currentLang;

    var overlay = el('div', 'tqa-overlay');
    var dialog = el('div', 'tqa-viewer');
    dialog.setAttribute('role', 'dialog');
    dialog.setAttribute('aria-modal', 'true');
    dialog.lang = lang;
    var titleId = nextId('tqa-viewer-title');
    dialog.setAttribute('aria-labelledby', titleId);

    var head = el('div', 'tqa-viewer-head');
    var h = el('h3', 'tqa-viewer-title', c.title);
    h.id = titleId;
    if (c.lang) h.lang = c.lang;
    var close = el('button', 'tqa-viewer-close tqa-icon-btn');
    close.type = 'button';
    close.appendChild(icon(ICON_X));
    close.setAttribute('aria-label', t(lang, 'viewerClose'));
    close.setAttribute('title', t(lang, 'viewerClose'));
    head.appendChild(h);
    head.appendChild(close);

    var meta = el('div', 'tqa-viewer-meta');
    var textBox = el('div', 'tqa-viewer-text');
    textBox.tabIndex = 0;
    textBox.setAttribute('role', 'region');
    textBox.setAttribute('aria-labelledby', titleId);
    textBox.setAttribute('aria-busy', 'true');
    if (c.lang) textBox.lang = c.lang;
    textBox.appendChild(el('p', 'tqa-viewer-loading', t(lang, 'viewerLoading')));

    dialog.appendChild(head);
    dialog.appendChild(meta);
    dialog.appendChild(textBox);
    overlay.appendChild(dialog);
    root.appendChild(overlay);

    var token = {};
    viewer = { overlay: overlay, dialog: dialog, opener: opener, token: token };
    panel.inert = true;
    panel.setAttribute('aria-hidden', 'true');
    launcher.inert = true;
    root.classList.add('tqa-has-viewer');

    close.addEventListener('click', function () { closeViewer(true); });
    overlay.addEventListener('mousedown', function (e) {
      if (e.target === overlay) closeViewer(true);
    });
    dialog.addEventListener('keydown', function (e) {
      if (e.key !== 'Tab') return;
      var items = focusables(dialog);
      if (!items.length) {
        e.preventDefault();
        return;
      }
      var first = items[0];
      var last = items[items.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      } else if (items.indexOf(document.activeElement) < 0) {
        e.preventDefault();
        first.focus();
      }
    });

    textBox.focus({ preventScroll: true });

    fetchSource(c.doc_id).then(function (result) {
      if (!viewer || viewer.token !== token) return; // closed or replaced meanwhile
      while (textBox.firstChild) textBox.removeChild(textBox.firstChild);
      textBox.setAttribute('aria-busy', 'false');
      if (!result.source) {
        var err = el('div', 'tqa-error tqa-viewer-error');
        err.setAttribute('role', 'alert');
        err.appendChild(el('p', 'tqa-error-text', t(lang, 'viewerError')));
        if (result.detail) err.appendChild(el('p', 'tqa-error-detail', result.detail));
        textBox.appendChild(err);
        return;
      }
      var src = result.source;
      if (typeof src.title === 'string' && src.title) h.textContent = src.title;
      var srcLang = normLang(src.lang) || c.lang;
      if (srcLang) {
        h.lang = srcLang;
        textBox.lang = srcLang;
        meta.appendChild(el('span', 'tqa-viewer-lang', t(lang, 'viewerLang')[srcLang]));
      }
      if (c.page) meta.appendChild(el('span', 'tqa-viewer-page', t(lang, 'viewerPage') + c.page));
      var href = safeHttpUrl(src.url) || safeHttpUrl(c.url);
      if (href) {
        var linkWrap = el('span', 'tqa-viewer-link-wrap');
        linkWrap.appendChild(document.createTextNode(t(lang, 'viewerOriginal') + ' '));
        var a = el('a', 'tqa-viewer-link', href);
        a.href = href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        linkWrap.appendChild(a);
        meta.appendChild(linkWrap);
      }

      var text = src.text;
      var span = locateSpan(text, c);
      var content = el('div', 'tqa-viewer-content');
      var mark = null;
      if (span) {
        content.appendChild(document.createTextNode(text.slice(0, span.start)));
        mark = el('mark', 'tqa-highlight', text.slice(span.start, span.end));
        mark.id = nextId('tqa-hl');
        content.appendChild(mark);
        content.appendChild(document.createTextNode(text.slice(span.end)));
      } else {
        content.appendChild(document.createTextNode(text));
      }
      textBox.appendChild(content);
      if (mark) {
        try {
          mark.scrollIntoView({ block: 'center', inline: 'nearest' });
        } catch (e) {
          mark.scrollIntoView();
        }
      }
    });
  }

  function closeViewer(restoreFocus) {
    if (!viewer) return;
    var v = viewer;
    viewer = null;
    if (v.overlay.parentNode) v.overlay.parentNode.removeChild(v.overlay);
    panel.inert = false;
    panel.removeAttribute('aria-hidden');
    launcher.inert = false;
    root.classList.remove('tqa-has-viewer');
    if (restoreFocus && v.opener && v.opener.isConnected) v.opener.focus();
  }

  // Escape closes the viewer first, then the panel.
  root.addEventListener('keydown', function (e) {
    if (e.key !== 'Escape' && e.key !== 'Esc') return;
    if (viewer) {
      e.preventDefault();
      e.stopPropagation();
      closeViewer(true);
    } else if (isOpen()) {
      e.preventDefault();
      e.stopPropagation();
      setOpen(false);
    }
  });

  // ---------------------------------------------------------------- start

  function loadCss() {
    var links = document.querySelectorAll('link[rel~="stylesheet"]');
    for (var i = 0; i < links.length; i++) {
      if (links[i].href === CSS_HREF) return;
    }
    var link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = CSS_HREF;
    link.setAttribute('data-tqa', '');
    (document.head || document.documentElement).appendChild(link);
  }

  function start() {
    loadCss();
    applyLang(uiLang());
    renderAll();
    document.body.appendChild(root);
    if (state.open) setOpen(true, { focus: false });
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
