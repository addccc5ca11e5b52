// An ES module (package.json "type": "module", as the starter has); its output directory is the default, _site/.
export default function (eleventyConfig) {
  eleventyConfig.addFilter("shout", (text) => String(text).toUpperCase());
}

export const config = {
  dir: { input: "content", includes: "_includes" },
  markdownTemplateEngine: "njk",
};
