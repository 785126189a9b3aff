// twofa console: a few lines of progressive enhancement; every page works without them.
"use strict";
// Words come from the page (data-* on <body>, in its language), English when missing.
const words = (key, english) => (document.body && document.body.dataset[key]) || english;
document.addEventListener("DOMContentLoaded", () => {
  // Sign-in tells the server this browser's time zone; it keeps it only while the teammate
  // has none (Settings → Language and time changes it).
  const zone = (() => { try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; } })();
  for (const field of document.querySelectorAll("input[data-browser-zone]")) field.value = zone;
  // Copy buttons (recovery codes, a TOTP secret, a bypass code).
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const status = button.parentElement.querySelector(".copy-status");
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        if (status) status.textContent = words("copied", "Copied to the clipboard.");
      } catch (e) {
        if (status) status.textContent = words("copyFailed", "Could not copy: select the text and copy it by hand.");
      }
    });
  }
  // The rollout counts follow the invitations as they go out, without a reload.
  const rollout = document.querySelector("[data-poll]");
  if (rollout) {
    const status = document.getElementById("rollout-status");
    const progress = document.getElementById("rollout-progress");
    const poll = async () => {
      try {
        const response = await fetch(rollout.dataset.poll, {credentials: "same-origin", cache: "no-store"});
        if (!response.ok) return;
        const policy = await response.json();
        const counts = policy.rollout;
        for (const [key, value] of Object.entries(counts)) {
          const cell = rollout.querySelector(`[data-count="${key}"]`);
          if (cell && cell.textContent !== String(value)) cell.textContent = String(value);
        }
        const text = !policy.require_two_factor ? status.dataset.off
          : counts.pending ? status.dataset.going : status.dataset.done;
        if (status.textContent !== text) status.textContent = text;  // announced once per change
        progress.max = counts.teammates || 1;
        progress.value = policy.require_two_factor ? counts.teammates - counts.pending : 0;
      } catch (e) { /* offline for a moment: the next poll tries again */ }
    };
    setInterval(() => { if (!document.hidden) poll(); }, 1000);
  }
});

// Security keys and passkeys (WebAuthn). The server sends options in their JSON form and
// takes the browser's answer as JSON in an ordinary form field, so each change is still a
// CSRF-checked form post. Browsers without the JSON helpers get the small fallback below.
const b64 = {
  decode: (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)).buffer,
  encode: (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
};
const creationOptions = (json) => PublicKeyCredential.parseCreationOptionsFromJSON
  ? PublicKeyCredential.parseCreationOptionsFromJSON(json)
  : {...json, challenge: b64.decode(json.challenge), user: {...json.user, id: b64.decode(json.user.id)},
     excludeCredentials: (json.excludeCredentials || []).map((c) => ({...c, id: b64.decode(c.id)}))};
const requestOptions = (json) => PublicKeyCredential.parseRequestOptionsFromJSON
  ? PublicKeyCredential.parseRequestOptionsFromJSON(json)
  : {...json, challenge: b64.decode(json.challenge),
     allowCredentials: (json.allowCredentials || []).map((c) => ({...c, id: b64.decode(c.id)}))};
const credentialJSON = (credential) => {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const r = credential.response, out = {};
  for (const name of ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"]) {
    if (r[name]) out[name] = b64.encode(r[name]);
  }
  if (r.getTransports) out.transports = r.getTransports();
  return {id: credential.id, rawId: b64.encode(credential.rawId), type: credential.type,
          response: out, clientExtensionResults: credential.getClientExtensionResults(),
          authenticatorAttachment: credential.authenticatorAttachment};
};
const postForm = async (url, form, extra = {}) => {
  const body = new FormData();
  body.append("csrf_token", form.querySelector("[name=csrf_token]").value);
  for (const [key, value] of Object.entries(extra)) body.append(key, value);
  const response = await fetch(url, {method: "POST", body, credentials: "same-origin"});
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error ? answer.error.message : words("refused", "The server refused."));
  return answer;
};
const say = (form, text) => { const s = form.querySelector(".key-status"); if (s) s.textContent = text; };
const refused = (form, error) => say(form, error.name === "NotAllowedError"
  ? words("keySilent", "The security key did not answer, or you cancelled. Try again.")
  : words("keyFailed", "That did not work: {problem}").replace("{problem}", error.message));

document.addEventListener("DOMContentLoaded", () => {
  if (!window.PublicKeyCredential) return;  // no WebAuthn here: the forms stay hidden or inert
  // Settings: add a key. The name is checked by the form itself before the ceremony starts.
  for (const form of document.querySelectorAll("form[data-register]")) {
    form.addEventListener("submit", async (event) => {
      if (form.elements.credential.value) return;  // the answer is in: post it
      event.preventDefault();
      try {
        say(form, words("touchKey", "Touch your security key, or confirm with your device."));
        const options = await postForm(form.dataset.register, form);
        const credential = await navigator.credentials.create({publicKey: creationOptions(options)});
        form.elements.credential.value = JSON.stringify(credentialJSON(credential));
        form.submit();
      } catch (error) { refused(form, error); }
    });
  }
  // The code step: the key instead of a code.
  for (const form of document.querySelectorAll("form[data-assert]")) {
    form.hidden = false;
    form.querySelector("button").addEventListener("click", async () => {
      try {
        say(form, words("touchKey", "Touch your security key, or confirm with your device."));
        const options = requestOptions(JSON.parse(form.dataset.assert));
        const credential = await navigator.credentials.get({publicKey: options});
        form.elements.webauthn.value = JSON.stringify(credentialJSON(credential));
        form.submit();
      } catch (error) { refused(form, error); }
    });
  }
  // Sign-in with a passkey alone: a button, and the browser's autofill where it offers it.
  const passkey = document.querySelector("form[data-passkey]");
  if (passkey) {
    passkey.hidden = false;
    let pending = null;
    const signIn = async (mediation) => {
      if (pending) pending.abort();  // one ceremony at a time: the button ends the autofill one
      const abort = pending = new AbortController();
      const workspace = document.getElementById("workspace");
      const answer = await postForm(passkey.dataset.passkey, passkey, {workspace: workspace ? workspace.value : ""});
      const credential = await navigator.credentials.get({
        publicKey: requestOptions(answer.options), mediation, signal: abort.signal});
      passkey.elements.challenge.value = answer.challenge;
      passkey.elements.webauthn.value = JSON.stringify(credentialJSON(credential));
      passkey.submit();
    };
    passkey.querySelector("button").addEventListener("click", () => {
      say(passkey, words("choosePasskey", "Choose your passkey."));
      signIn("optional").catch((error) => refused(passkey, error));
    });
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (available) signIn("conditional").catch(() => { /* dismissed or replaced by the button */ });
      });
    }
  }
});
