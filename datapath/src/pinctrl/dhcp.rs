//! `put_dhcp_opts`: DHCPv4 replies as pinctrl's `pinctrl_handle_put_dhcp_opts` builds
//! them, from the options OVN's `encode_PUT_DHCPV4_OPTS` encodes.
//!
//! DISCOVER → OFFER; REQUEST → ACK, or NAK when the requested address (option 50,
//! else `ciaddr`) is not the offered one; INFORM → ACK without the lease options
//! (RFC 2131 §3.4); RELEASE and DECLINE are logged and not answered. The reply
//! replaces the request in place: its Ethernet and IP headers are kept (the pipeline
//! rewrites addresses and ports after it resumes), the BOOTP header is the request's
//! with `op`, `yiaddr` and `siaddr` set, the options are the message type, the encoded
//! options, four pad bytes and END (and four more zero bytes, as pinctrl leaves them),
//! the UDP checksum is 0 and the IP destination is broadcast when the client asked.

use ovnest_logical::actions::GenOption;
use ovnest_logical::expr::Const;

use crate::flow::Layers;
use crate::wire::dhcp::{self as wire, DhcpPacket, msg, opt};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::udp::UdpPacket;

/// Why no reply was built (pinctrl resumes the pipeline with the result bit clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoReply(pub &'static str);

impl NoReply {
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

/// What pinctrl reads from a DHCP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub msg_type: u8,
    /// Option 50, or `ciaddr` without it.
    pub request_ip: u32,
    /// The client sent option 175 (iPXE).
    pub ipxe: bool,
    pub flags: u16,
    pub ciaddr: u32,
    pub siaddr: u32,
}

/// Reads a DHCP request from a UDP segment (header included), bounded by the segment.
/// This is the fuzzing entry point for DHCPv4.
pub fn parse(udp: &[u8]) -> Result<Request, NoReply> {
    let udp = UdpPacket::new_checked(udp).map_err(|_| NoReply("truncated"))?;
    let d = DhcpPacket::new_checked(udp.payload()).map_err(|_| NoReply("truncated"))?;
    if d.op() != wire::op::REQUEST {
        return Err(NoReply("bad_op"));
    }
    if !d.has_magic() {
        return Err(NoReply("bad_magic"));
    }
    let mut req = Request {
        msg_type: 0,
        request_ip: d.ciaddr(),
        ipxe: false,
        flags: d.flags(),
        ciaddr: d.ciaddr(),
        siaddr: d.siaddr(),
    };
    let mut have_type = false;
    for o in d.options() {
        match o.code {
            opt::MSG_TYPE if o.data.len() == 1 => {
                req.msg_type = o.data[0];
                have_type = true;
            }
            opt::REQUESTED_IP if o.data.len() == 4 => {
                req.request_ip = u32::from_be_bytes([o.data[0], o.data[1], o.data[2], o.data[3]]);
            }
            opt::ETHERBOOT => req.ipxe = true,
            _ => {}
        }
    }
    if !have_type {
        return Err(NoReply("no_msg_type"));
    }
    Ok(req)
}

/// The options of a `put_dhcp_opts` action as OVN encodes them for pinctrl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Userdata {
    pub offer_ip: u32,
    /// Options (code, length, value) in the order they go into the reply.
    pub opts: Vec<u8>,
}

/// OVN's `encode_PUT_DHCPV4_OPTS`: `offerip` apart; `bootfile_name` (67),
/// `bootfile_name_alt` (254) and `next_server` (253) first; the rest in the action's
/// order. `None` without `offerip` (the parser refuses such an action).
pub fn encode(options: &[GenOption]) -> Option<Userdata> {
    let offer = options.iter().find(|o| o.def.code == 0)?;
    let offer_ip = first_int(offer) as u32;
    let mut opts = Vec::new();
    let first = [
        u32::from(opt::BOOTFILE),
        u32::from(opt::BOOTFILE_ALT),
        u32::from(opt::NEXT_SERVER),
    ];
    for code in first {
        if let Some(o) = options.iter().find(|o| o.def.code == code) {
            if code == u32::from(opt::NEXT_SERVER) {
                opts.push(opt::NEXT_SERVER);
                opts.push(4);
                opts.extend_from_slice(&(first_int(o) as u32).to_be_bytes());
            } else {
                let s = first_str(o);
                opts.push(code as u8);
                opts.push(s.len() as u8);
                opts.extend_from_slice(s.as_bytes());
            }
        }
    }
    // find_opt picks the first option with a code; later duplicates are encoded
    // generically, as OVN does.
    let skip: Vec<*const GenOption> = [0, 67, 254, 253]
        .iter()
        .filter_map(|c| options.iter().find(|o| o.def.code == *c))
        .map(|o| o as *const GenOption)
        .collect();
    for o in options {
        if !skip.contains(&(o as *const GenOption)) {
            encode_option(o, &mut opts);
        }
    }
    Some(Userdata { offer_ip, opts })
}

fn first_int(o: &GenOption) -> u128 {
    match o.value.values.first() {
        Some(Const::Int(c)) => c.value,
        _ => 0,
    }
}

fn first_str(o: &GenOption) -> &str {
    match o.value.values.first() {
        Some(Const::Str(s)) => s,
        _ => "",
    }
}

/// OVN's `encode_put_dhcpv4_option`: one option by its SB type. The length byte is
/// the value's length truncated to 8 bits, as OVN writes it.
pub fn encode_option(o: &GenOption, out: &mut Vec<u8>) {
    let code = o.def.code as u8;
    let values = &o.value.values;
    let ints = || {
        values.iter().map(|c| match c {
            Const::Int(k) => (k.value, k.mask),
            Const::Str(_) => (0, None),
        })
    };
    let start = out.len();
    out.push(code);
    out.push(0);
    match o.def.ty.as_str() {
        "bool" | "uint8" => out.push(first_int(o) as u8),
        "uint16" => out.extend_from_slice(&(first_int(o) as u16).to_be_bytes()),
        "uint32" => out.extend_from_slice(&(first_int(o) as u32).to_be_bytes()),
        "ipv4" => {
            for (v, _) in ints() {
                out.extend_from_slice(&(v as u32).to_be_bytes());
            }
        }
        "static_routes" => {
            // RFC 3442: (prefix length, significant octets of the destination, router).
            let routes: Vec<(u128, Option<u128>)> = ints().collect();
            for pair in routes.as_chunks::<2>().0 {
                let (dst, mask) = pair[0];
                let plen = mask.map_or(32, |m| (m as u32).count_ones());
                let octets = plen.div_ceil(8) as usize;
                out.push(plen as u8);
                out.extend_from_slice(&(dst as u32).to_be_bytes()[..octets]);
                out.extend_from_slice(&(pair[1].0 as u32).to_be_bytes());
            }
        }
        "str" => out.extend_from_slice(first_str(o).as_bytes()),
        "host_id" => match values.first() {
            Some(Const::Str(s)) => out.extend_from_slice(s.as_bytes()),
            _ => out.extend_from_slice(&(first_int(o) as u32).to_be_bytes()),
        },
        "domains" => out.extend_from_slice(&encode_domains(first_str(o))),
        // A type OVN does not encode: code and a zero length.
        _ => {}
    }
    out[start + 1] = (out.len() - start - 2) as u8;
}

/// RFC 1035 §4.1.4 names with compression, as OVN's encoder writes a comma-separated
/// search list. OVN keys the suffixes it has written by their text less its last
/// character; that is kept (it decides where pointers go). A name longer than 255
/// characters stops the encoding with nothing written, as OVN.
pub fn encode_domains(list: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut seen: Vec<(Vec<u8>, u16)> = Vec::new();
    let key = |s: &[u8]| s[..s.len().saturating_sub(1)].to_vec();
    for domain in list
        .as_bytes()
        .split(|&c| c == b',')
        .filter(|d| !d.is_empty())
    {
        if domain.len() > 255 {
            return Vec::new();
        }
        let mut suffix = key(domain);
        let mut rest: &[u8] = domain;
        let mut ended = true;
        loop {
            // strtok: skip leading dots, take up to the next dot.
            let start = rest.iter().position(|&c| c != b'.');
            let Some(start) = start else { break };
            let tail = &rest[start..];
            let end = tail.iter().position(|&c| c == b'.');
            let (label, after) = match end {
                Some(e) => (&tail[..e], &tail[e + 1..]),
                None => (tail, &tail[tail.len()..]),
            };
            if let Some((_, at)) = seen.iter().find(|(s, _)| *s == suffix) {
                out.extend_from_slice(&(0xc000 | at).to_be_bytes());
                ended = false;
                break;
            }
            seen.push((suffix.clone(), out.len() as u16));
            out.push(label.len() as u8);
            out.extend_from_slice(label);
            if !after.is_empty() {
                suffix = key(after);
            }
            rest = after;
        }
        if ended {
            out.push(0);
        }
    }
    out
}

/// Builds the reply to the DHCP request in `frame` (laid out as `layers`) with the
/// action's options. `Ok` holds the reply frame and the counter outcome (`offer`,
/// `ack`, `nak`, `inform_ack`).
pub fn reply(
    frame: &[u8],
    layers: Layers,
    options: &[GenOption],
) -> Result<(Vec<u8>, &'static str), NoReply> {
    let userdata = encode(options).ok_or(NoReply("no_offerip"))?;
    reply_with(frame, layers, &userdata)
}

/// [`reply`] with options already encoded.
pub fn reply_with(
    frame: &[u8],
    layers: Layers,
    userdata: &Userdata,
) -> Result<(Vec<u8>, &'static str), NoReply> {
    let l3 = layers.l3;
    let l4 = layers.l4.ok_or(NoReply("truncated"))?;
    let ip = Ipv4Packet::new_checked(frame.get(l3..).ok_or(NoReply("truncated"))?)
        .map_err(|_| NoReply("truncated"))?;
    let end = l3 + usize::from(ip.total_len());
    if l4 > end {
        return Err(NoReply("truncated"));
    }
    let segment = &frame[l4..end];
    let req = parse(segment)?;
    let offer = userdata.offer_ip;

    let mut inform_opts = Vec::new();
    let mut opts: &[u8] = &userdata.opts;
    let (msg_type, outcome) = match req.msg_type {
        msg::DISCOVER => (msg::OFFER, "offer"),
        msg::REQUEST if req.request_ip == offer => (msg::ACK, "ack"),
        msg::REQUEST => {
            tracing::debug!(requested = %std::net::Ipv4Addr::from(req.request_ip),
                offered = %std::net::Ipv4Addr::from(offer), "DHCPREQUEST for another address");
            (msg::NAK, "nak")
        }
        msg::RELEASE => return Err(NoReply("release")),
        msg::DECLINE => return Err(NoReply("decline")),
        msg::INFORM => {
            // RFC 2131 §3.4: no address, no lease times.
            for o in wire::Options::new(&userdata.opts) {
                if !matches!(o.code, opt::NETMASK | opt::LEASE_TIME | opt::T1 | opt::T2) {
                    inform_opts.push(o.code);
                    inform_opts.push(o.data.len() as u8);
                    inform_opts.extend_from_slice(o.data);
                }
            }
            opts = &inform_opts;
            (msg::ACK, "inform_ack")
        }
        _ => return Err(NoReply("bad_msg_type")),
    };

    // next_server sets siaddr; bootfile_name_alt replaces bootfile_name unless the
    // client is iPXE (then the alternative is left out).
    let mut next_server = req.siaddr;
    let mut reply_opts: Vec<u8> = Vec::with_capacity(opts.len());
    let list: Vec<wire::DhcpOption<'_>> = wire::Options::new(opts).collect();
    let has_boot = list.iter().any(|o| o.code == opt::BOOTFILE);
    for (i, o) in list.iter().enumerate() {
        let mut code = o.code;
        match o.code {
            opt::NEXT_SERVER if o.data.len() == 4 => {
                next_server = u32::from_be_bytes([o.data[0], o.data[1], o.data[2], o.data[3]]);
            }
            opt::BOOTFILE
                if !req.ipxe && list.get(i + 1).is_some_and(|n| n.code == opt::BOOTFILE_ALT) =>
            {
                continue;
            }
            opt::BOOTFILE_ALT if has_boot && req.ipxe => continue,
            opt::BOOTFILE_ALT => code = opt::BOOTFILE,
            _ => {}
        }
        reply_opts.push(code);
        reply_opts.push(o.data.len() as u8);
        reply_opts.extend_from_slice(o.data);
    }

    let nak = msg_type == msg::NAK;
    let opts_len = if nak { 0 } else { reply_opts.len() };
    let dhcp_start = l4 + UdpPacket::<&[u8]>::HEADER_LEN;
    let l4_size = 8 + wire::HEADER_LEN + 16 + opts_len;
    let mut out = Vec::with_capacity(l4 + l4_size);
    out.extend_from_slice(&frame[..dhcp_start + wire::HEADER_LEN]);
    out.extend_from_slice(&wire::MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(&[opt::MSG_TYPE, 1, msg_type]);
    out.extend_from_slice(&reply_opts[..opts_len]);
    out.extend_from_slice(&[0, 0, 0, 0, opt::END, 0, 0, 0, 0]);

    let mut d = DhcpPacket::new_unchecked(&mut out[dhcp_start..]);
    d.set_op(wire::op::REPLY);
    if req.msg_type != msg::INFORM {
        d.set_yiaddr(if nak { 0 } else { offer });
        d.set_siaddr(if nak { 0 } else { next_server });
    } else {
        d.set_yiaddr(0);
    }
    let mut udp = UdpPacket::new_unchecked(&mut out[l4..]);
    udp.set_len(l4_size as u16);
    udp.set_checksum(0);
    let dst = if req.flags & wire::FLAG_BROADCAST != 0 {
        u32::MAX
    } else {
        offer
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut out[l3..]);
    ip.set_dst(dst.to_be_bytes());
    ip.set_total_len((l4 - l3 + l4_size) as u16);
    // pinctrl checksums the first 20 bytes, options or not.
    ip.fill_checksum_over(20);
    tracing::debug!(
        "DHCP{} {} {}",
        outcome.to_uppercase(),
        super::compose::mac_text(&out[6..12]),
        std::net::Ipv4Addr::from(offer)
    );
    Ok((out, outcome))
}
