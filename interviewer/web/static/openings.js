// Recruiter pages: copy an invite link to the clipboard. The links are in plain inputs, so
// without this script they can still be selected and copied by hand.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const input = document.getElementById(button.dataset.copy);
  if (!input) return;
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    input.focus();
    input.select();
    ok = document.execCommand && document.execCommand("copy");
  }
  const status = document.getElementById("copy-status");
  button.textContent = ok ? "Copied" : "Press Ctrl+C";
  if (status) status.textContent = ok ? "Link copied to the clipboard." : "Select the link and press Ctrl+C to copy it.";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
});
