// Lay every plotly figure out again once the page has its final width: the figures are
// drawn while the page is still being laid out, at a width the article does not keep.
window.addEventListener("load", () => {
  document.querySelectorAll(".js-plotly-plot").forEach((div) => Plotly.Plots.resize(div));
});
