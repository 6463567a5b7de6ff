// `--name=value` options of the bench scripts: arg("cycles", 3000) is the value after `--cycles=`, or the default.
export const arg = (name, dflt) =>
  process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
