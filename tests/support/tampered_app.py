"""A tampered web app in the browser (someone holding the unlocked phone, or a modified page): scripts to evaluate in
the app's page (page.evaluate runs them through CDP, which the page's CSP does not govern)."""

# navigator.credentials.get asked with user verification "discouraged" instead of "required": the authenticator then
# answers with presence alone, and its genuine assertion says the user was not verified.
ASK_WITHOUT_USER_VERIFICATION = """() => {
  window.__harbourGet = window.__harbourGet || navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) =>
    window.__harbourGet({...options, publicKey: {...options.publicKey, userVerification: "discouraged"}});
}"""
# And back to asking as the app does.
ASK_AS_THE_APP_DOES = "() => { navigator.credentials.get = window.__harbourGet; }"
