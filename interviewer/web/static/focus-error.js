// Moves the keyboard (and a screen reader) to the error a form came back with, so the person
// hears what to fix first. A file rather than an inline script: the Content-Security-Policy
// runs scripts from this site's static files only.
document.querySelector("[data-focus]")?.focus();
