// Labels: Chinese first, English when chosen (kept in localStorage "lang").
export const DICT = {
  zh: {
    title: '会话存档审阅', signin: '登录', username: '用户名', password: '密码', logout: '退出登录',
    corp: '企业', search: '搜索', search_ph: '搜索消息', filters: '筛选', from: '开始日期', to: '结束日期',
    msgtype: '消息类型', sender: '发送者', all: '全部', people: '人员', everyone: '全部人员',
    conversations: '会话', back: '返回会话', more: '更多', pick_conv: '请选择会话',
    older: '加载更早', newer: '加载更新', export_csv: '导出 CSV', export_jsonl: '导出 JSONL',
    chain: '访问日志校验', verify: '校验', access_log: '访问日志', time: '时间', user: '用户',
    action: '操作', target: '对象', users: '用户', role: '角色', disabled: '已停用',
    admin_note: '管理员不能阅读消息；用户用命令行 user add 或 /api/users 管理。',
    group: '群聊', direct: '单聊', undecryptable: '无法解密', messages: '条消息',
    results: '搜索结果', no_results: '没有结果', not_found: '未找到（或无权查看）', error: '出错了',
    bad_login: '用户名或密码错误', rate_limited: '尝试次数过多，请稍后再试',
    not_downloaded: '未下载', download_failed: '下载失败', download: '下载', original: '原始文件',
    revoked: '撤回了一条消息', revoked_target: '被撤回的消息', link: '链接', location: '位置',
    card: '名片', file: '文件', chatrecord: '聊天记录', mixed: '图文消息', emotion: '表情',
    weapp: '小程序', meeting: '会议', voip: '通话', docmsg: '在线文档', todo: '待办', vote: '投票',
    calendar: '日程', redpacket: '红包', collect: '填表', agree: '同意存档', disagree: '不同意存档',
    switch: '切换企业', unknown: '未知消息类型', raw: '原始数据', intact: '完整：已校验 {n} 条',
    broken: '已损坏：第 {id} 条 — {reason}', truncated: '（嵌套过深，已截断）', internal: '内部',
    external: '外部', bot: '机器人', count: '{n} 条', none: '无',
    text: '文本', image: '图片', voice: '语音', video: '视频', revoked_short: '撤回',
    jump_date: '跳转到日期', go: '跳转', only_conv: '仅当前会话', members: '成员 {n} 人',
  },
  en: {
    title: 'Archive review', signin: 'Sign in', username: 'User name', password: 'Password', logout: 'Sign out',
    corp: 'Corp', search: 'Search', search_ph: 'Search messages', filters: 'Filters', from: 'From', to: 'To',
    msgtype: 'Type', sender: 'Sender', all: 'All', people: 'People', everyone: 'Everyone',
    conversations: 'Conversations', back: 'Back to conversations', more: 'More', pick_conv: 'Pick a conversation',
    older: 'Load older', newer: 'Load newer', export_csv: 'Export CSV', export_jsonl: 'Export JSONL',
    chain: 'Access log verification', verify: 'Verify', access_log: 'Access log', time: 'Time', user: 'User',
    action: 'Action', target: 'Target', users: 'Users', role: 'Role', disabled: 'Disabled',
    admin_note: 'Admins read no messages; manage users with `user add` or /api/users.',
    group: 'Group', direct: 'Direct', undecryptable: 'Undecryptable', messages: 'messages',
    results: 'Search results', no_results: 'No results', not_found: 'Not found (or not yours to see)',
    error: 'Error', bad_login: 'Wrong user name or password', rate_limited: 'Too many attempts; try later',
    not_downloaded: 'Not downloaded', download_failed: 'Download failed', download: 'Download',
    original: 'Original', revoked: 'revoked a message', revoked_target: 'the revoked message', link: 'Link',
    location: 'Location', card: 'Contact card', file: 'File', chatrecord: 'Chat record', mixed: 'Mixed message',
    emotion: 'Sticker', weapp: 'Mini program', meeting: 'Meeting', voip: 'Call', docmsg: 'Document',
    todo: 'To-do', vote: 'Vote', calendar: 'Calendar', redpacket: 'Red packet', collect: 'Form',
    agree: 'Agreed to archiving', disagree: 'Refused archiving', switch: 'Switched corp',
    unknown: 'Unknown message type', raw: 'Raw', intact: 'Intact: {n} entries verified',
    broken: 'Broken at entry {id}: {reason}', truncated: '(nested too deep, cut)', internal: 'internal',
    external: 'external', bot: 'bot', count: '{n}', none: 'none',
    text: 'Text', image: 'Image', voice: 'Voice', video: 'Video', revoked_short: 'Revoke',
    jump_date: 'Jump to date', go: 'Go', only_conv: 'Only this conversation', members: '{n} members',
  },
};

export const lang = localStorage.getItem('lang') === 'en' ? 'en' : 'zh';
export const locale = lang === 'en' ? 'en-GB' : 'zh-CN';

/** The label `key`, with `{name}` replaced from `vars`. */
export function t(key, vars = {}) {
  const s = DICT[lang][key] ?? DICT.zh[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

/** Fills `data-i18n` (text) and `data-i18n-ph` (placeholder) elements under `root`. */
export function applyLabels(root = document) {
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-ph]')) el.placeholder = t(el.dataset.i18nPh);
  document.title = t('title');
}

/** Switches the language (the page reloads; the session and the location stay). */
export function toggleLang() {
  localStorage.setItem('lang', lang === 'en' ? 'zh' : 'en');
  location.reload();
}
