/** Masks the userinfo of a URL such as a proxy setting (`http://user:pass@proxy:3128` -> `http://***@proxy:3128`). */
export function maskUrlUserinfo(value: string): string {
  return value.replace(
    /^([a-z][a-z0-9+.-]*:\/\/)?[^/@\s]*@/i,
    (_m, scheme: string | undefined) => `${scheme ?? ''}***@`,
  );
}
