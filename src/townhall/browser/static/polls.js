// The room page's Polls and Questions panels: the polls and questions the server sent
// (PollUpdated, QuestionUpdated), shown as lists, and the forms that send CreatePoll,
// OpenPoll, ClosePoll, SharePollResults, Vote, AskQuestion, UpvoteQuestion and
// SettleQuestion. It holds no connection and decides nothing: room.js gives it the
// state and a `send(message)`; the main server decides and answers (docs/live.md,
// "Polls and questions"). Votes and upvotes sent are remembered here only to stop
// offering the button, in the tab's sessionStorage (per event and name) so that a
// reload does not offer them again; a refusal comes back as an Error that room.js shows.

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

// What the wire refuses (a peer sending it is disconnected): controls anywhere, and in a
// poll's one-line texts bidirectional overrides too (docs/protocol.md, field types).
const clean = (text, lines = false) =>
  text.replace(lines ? /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g : /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, "").trim();

const POLL_QUESTION_MAX = 500;
const POLL_OPTION_MAX = 100;
const MAX_POLL_OPTIONS = 10;
const STATE_WORDS = { draft: "draft", open: "open", closed: "closed" };
const QUESTION_WORDS = { open: "open", answered: "answered", "answered-live": "answered live", dismissed: "dismissed" };

export function createPanels({ send, problem, memoryKey }) {
  const state = { polls: new Map(), questions: new Map(), voted: new Set(), upvoted: new Set(), me: null, moderator: false };

  // What this tab sent as `state.me`: ids only, so a tampered entry can at worst hide a button.
  const remembered = (kind) => `${memoryKey}:${state.me}:${kind}`;
  function recall(kind) {
    try {
      const ids = JSON.parse(sessionStorage.getItem(remembered(kind)) || "[]");
      return new Set(Array.isArray(ids) ? ids.filter(Number.isInteger).slice(0, 1000) : []);
    } catch {
      return new Set(); // storage refused (privacy settings) or garbled: forget
    }
  }
  function remember(kind, ids) {
    try {
      sessionStorage.setItem(remembered(kind), JSON.stringify([...ids]));
    } catch {
      // storage refused or full: the page still stops offering the button until reloaded
    }
  }

  function render() {
    $("poll-form").hidden = !state.moderator;
    const polls = [...state.polls.values()].sort((a, b) => b.poll_id - a.poll_id);
    $("poll-list").replaceChildren(...polls.map(pollItem));
    $("no-polls").hidden = polls.length > 0;
    const questions = [...state.questions.values()].sort((a, b) => b.votes - a.votes || a.question_id - b.question_id);
    $("question-list").replaceChildren(...questions.map(questionItem));
    $("no-questions").hidden = questions.length > 0;
  }

  function pollItem(poll) {
    const li = el("li", { className: `poll ${poll.state}` });
    li.dataset.poll = String(poll.poll_id);
    li.append(el("strong", { textContent: poll.question }), " ", el("span", { className: "badge", textContent: STATE_WORDS[poll.state] || poll.state }));
    if (poll.counts) {
      const total = Math.max(1, poll.voters || 0);
      const results = el("ul", { className: "results", ariaLabel: `Results: ${poll.voters} voted` });
      poll.options.forEach((option, i) => {
        const meter = el("meter", { min: 0, max: total, value: poll.counts[i], ariaLabel: option });
        results.append(el("li", {}, `${option}: ${poll.counts[i]} `, meter));
      });
      li.append(results, el("p", { className: "muted", textContent: `${poll.voters} voted${poll.shared ? "; everyone sees the results" : "; only moderators see the results"}` }));
    }
    if (poll.state === "open" && !state.voted.has(poll.poll_id)) li.append(ballot(poll));
    else if (state.voted.has(poll.poll_id)) li.append(el("p", { className: "muted", textContent: "You voted." }));
    if (state.moderator) {
      const row = el("div", { className: "row" });
      const button = (text, message) => {
        const b = el("button", { type: "button", textContent: text });
        b.addEventListener("click", () => send(message));
        row.append(b);
      };
      if (poll.state === "draft") button("Open", { type: "OpenPoll", poll_id: poll.poll_id });
      if (poll.state === "open") button("Close", { type: "ClosePoll", poll_id: poll.poll_id });
      button(poll.shared ? "Hide results" : "Show results to everyone", { type: "SharePollResults", poll_id: poll.poll_id, shared: !poll.shared });
      li.append(row);
    }
    return li;
  }

  function ballot(poll) {
    const form = el("form", { className: "ballot" });
    const fieldset = el("fieldset", {}, el("legend", { textContent: poll.multiple ? "Choose any" : "Choose one" }));
    poll.options.forEach((option, i) => {
      const input = el("input", { type: poll.multiple ? "checkbox" : "radio", name: `poll-${poll.poll_id}`, value: String(i) });
      fieldset.append(el("label", {}, input, ` ${option}`));
    });
    form.append(fieldset, el("button", { type: "submit", textContent: "Vote" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const choices = [...form.querySelectorAll("input:checked")].map((input) => Number(input.value));
      if (choices.length === 0) {
        problem("poll", "Choose an option first.");
        return;
      }
      problem("poll", "");
      if (send({ type: "Vote", poll_id: poll.poll_id, choices })) {
        state.voted.add(poll.poll_id);
        remember("voted", state.voted);
        render();
      }
    });
    return form;
  }

  function questionItem(question) {
    const li = el("li", { className: `question ${question.state}` });
    li.dataset.question = String(question.question_id);
    const who = question.asker ? question.asker : "anonymous";
    li.append(
      el("span", { className: "votes", textContent: `${question.votes} ▲` }),
      " ",
      el("span", { className: "text", textContent: question.text }),
      el("span", { className: "muted", textContent: ` — ${who}${question.anonymous && question.asker ? " (anonymous to others)" : ""}` }),
      " ",
      el("span", { className: "badge", textContent: QUESTION_WORDS[question.state] || question.state }),
    );
    if (question.answer) li.append(el("p", { className: "answer", textContent: `Answer: ${question.answer}` }));
    const row = el("div", { className: "row" });
    const mine = question.asker === state.me;
    if (question.state === "open" && !mine && !state.upvoted.has(question.question_id)) {
      const up = el("button", { type: "button", textContent: "Upvote", ariaLabel: `Upvote: ${question.text}` });
      up.addEventListener("click", () => {
        if (send({ type: "UpvoteQuestion", question_id: question.question_id })) {
          state.upvoted.add(question.question_id);
          remember("upvoted", state.upvoted);
          render();
        }
      });
      row.append(up);
    }
    if (state.moderator) {
      const answer = el("input", { type: "text", maxLength: 1000, ariaLabel: "Written answer", placeholder: "Written answer" });
      const settle = (text, message) => {
        const b = el("button", { type: "button", textContent: text });
        b.addEventListener("click", () => send({ type: "SettleQuestion", question_id: question.question_id, ...message() }));
        row.append(b);
      };
      row.append(answer);
      settle("Answer", () => ({ state: "answered", answer: clean(answer.value, true) }));
      settle("Answered live", () => ({ state: "answered-live", answer: "" }));
      settle("Dismiss", () => ({ state: "dismissed", answer: "" }));
    }
    if (row.childElementCount) li.append(row);
    return li;
  }

  function writePoll(event) {
    event.preventDefault();
    const question = clean($("poll-question").value);
    const options = $("poll-options").value.split("\n").map((line) => clean(line)).filter(Boolean);
    if (!question || question.length > POLL_QUESTION_MAX) return problem("poll", `A poll's question holds 1 to ${POLL_QUESTION_MAX} characters.`);
    if (options.length < 2 || options.length > MAX_POLL_OPTIONS) return problem("poll", `A poll has 2 to ${MAX_POLL_OPTIONS} options, one a line.`);
    if (options.some((o) => o.length > POLL_OPTION_MAX) || new Set(options).size !== options.length) {
      return problem("poll", `Options differ from each other and hold at most ${POLL_OPTION_MAX} characters.`);
    }
    problem("poll", "");
    if (send({ type: "CreatePoll", question, options, multiple: $("poll-multiple").checked, shared: $("poll-shared").checked })) {
      $("poll-form").reset();
    }
  }

  function ask(event) {
    event.preventDefault();
    const text = clean($("question-text").value, true);
    if (!text) return;
    if (send({ type: "AskQuestion", text, anonymous: $("question-anonymous").checked })) $("question-text").value = "";
  }

  $("poll-form").addEventListener("submit", writePoll);
  $("question-form").addEventListener("submit", ask);

  return {
    // who we are, after each join (a rejoin may make us a moderator, or not)
    joined(name, moderator) {
      const again = state.me === name; // a rejoin keeps what it sent even if storage refused
      state.me = name;
      state.moderator = moderator;
      state.voted = new Set([...(again ? state.voted : []), ...recall("voted")]);
      state.upvoted = new Set([...(again ? state.upvoted : []), ...recall("upvoted")]);
      render();
    },
    onMessage(message) {
      if (message.type === "PollUpdated") state.polls.set(message.poll.poll_id, message.poll);
      else if (message.type === "QuestionUpdated") state.questions.set(message.question.question_id, message.question);
      else return false;
      render();
      return true;
    },
    snapshot: () => ({
      polls: [...state.polls.values()],
      questions: [...state.questions.values()].sort((a, b) => b.votes - a.votes || a.question_id - b.question_id),
    }),
  };
}
