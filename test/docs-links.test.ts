import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import t from 'tap'

// Issue 11: every link in the README and docs/ works in any clone. A relative link names a file or
// folder that git tracks (and a heading of it, after `#`): one that merely exists here, dist/ or
// .env, is not in a clone. Anything else is a public https:// page.

const root = resolve(new URL('..', import.meta.url).pathname)

/** The files git tracks and the folders holding them, relative to the root; null outside a git checkout. */
function trackedPaths (): Set<string> | null {
  const listed = spawnSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
  if (listed.status !== 0) return null
  const paths = new Set<string>()
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    const parts = file.split('/')
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join('/'))
  }
  return paths
}

const tracked = trackedPaths()

function markdownFiles (): string[] {
  const docs = readdirSync(join(root, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('docs', name))
  return ['README.md', 'examples/fastify-app/README.md', ...docs]
}

/** The text outside fenced code blocks and inline code, where links are links. */
function prose (markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '')
}

/** The targets of `[text](target)` links, `[label]: target` definitions, `<scheme:…>` autolinks and `<img src>`/`<a href>` attributes. */
export function linkTargets (markdown: string): string[] {
  const text = prose(markdown)
  const patterns = [
    /\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g,
    /^ {0,3}\[[^\]]+\]:\s*(\S+)/gm,
    /<([a-z][a-z0-9+.-]*:[^>\s]+)>/gi,
    /<(?:img|a)\s[^>]*?(?:src|href)="([^"]+)"/g
  ]
  return patterns.flatMap((pattern) => [...text.matchAll(pattern)].map((match) => match[1] as string))
}

/** GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
export function headingAnchors (markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const match of markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '').matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const slug = (match[1] as string).toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/ /g, '-')
    const count = seen.get(slug) ?? 0
    anchors.add(count === 0 ? slug : `${slug}-${count}`)
    seen.set(slug, count + 1)
  }
  return anchors
}

/** What is wrong with one link target of `file`, or undefined when it works. */
function problemWith (file: string, target: string): string | undefined {
  if (/^https:\/\//.test(target)) return undefined
  // The reader's own server, started by the steps beside the link.
  if (/^http:\/\/(localhost|127\.0\.0\.1)(:\d+)?\//.test(target)) return undefined
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return 'only https:// links may leave the repository'
  const [path = '', anchor] = target.split('#')
  const absolute = path === '' ? join(root, file) : resolve(root, dirname(file), decodeURIComponent(path))
  const inRepository = relative(root, absolute).split('\\').join('/')
  if (inRepository.startsWith('..')) return 'points outside the repository'
  if (!existsSync(absolute)) return 'no such file'
  // Outside a git checkout (an unpacked tarball), existing is all that can be checked.
  if (tracked && inRepository !== '' && !tracked.has(inRepository)) return 'not tracked by git, so not in a clone'
  if (anchor === undefined) return undefined
  if (statSync(absolute).isDirectory() || !absolute.endsWith('.md')) return 'an anchor on something that is not a Markdown file'
  return headingAnchors(readFileSync(absolute, 'utf8')).has(anchor) ? undefined : `no heading #${anchor}`
}

t.test('every link in the README and docs/ resolves inside the repository or is a public https page', async (t) => {
  let links = 0
  const broken: string[] = []
  for (const file of markdownFiles()) {
    for (const target of linkTargets(readFileSync(join(root, file), 'utf8'))) {
      links++
      const problem = problemWith(file, target)
      if (problem) broken.push(`${file}: ${target}: ${problem}`)
    }
  }
  t.ok(links > 50, `${links} links checked`)
  t.same(broken, [], 'no broken link')
})

t.test('the checker itself finds what it must', async (t) => {
  t.same(linkTargets('[a](x.md) `[b](y.md)` <img src="i.png" alt=""> <http://example.com/>\n[d]: w.md\n```\n[c](z.md)\n```\n'), ['x.md', 'w.md', 'http://example.com/', 'i.png'])
  t.equal(problemWith('README.md', 'http://localhost:9000/'), undefined, "the reader's own server")
  t.equal(problemWith('README.md', '../shared/CONTRACT.md'), 'points outside the repository')
  t.equal(problemWith('README.md', 'docs/nothing-here.md'), 'no such file')
  t.equal(problemWith('README.md', 'http://example.com/'), 'only https:// links may leave the repository')
  t.equal(problemWith('README.md', 'docs/configuration.md#no-such-heading'), 'no heading #no-such-heading')
  t.equal(problemWith('README.md', 'docs/configuration.md'), undefined)
  t.equal(problemWith('README.md', 'examples/fastify-app'), undefined, 'a tracked folder')
  if (tracked) {
    // On disk in every checkout that ran `npm ci`, in no clone.
    t.equal(problemWith('README.md', 'node_modules/tap/package.json'), 'not tracked by git, so not in a clone')
  } else {
    t.comment('not a git checkout: links are checked against the files on disk')
  }
  t.same([...headingAnchors("# A `b`: c's\n## A `b`: c's\n```\n# not a heading\n```\n")], ['a-b-cs', 'a-b-cs-1'])
})

t.test('the README stays short and points at every document in docs/', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const lines = readme.trimEnd().split('\n').length
  t.ok(lines <= 150, `README.md has ${lines} lines (at most 150)`)
  const linked = new Set(linkTargets(readme).map((target) => target.split('#')[0]))
  const docs = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)
  t.same(docs.filter((doc) => !linked.has(doc)), [], 'every docs/*.md is linked from the README')
})
