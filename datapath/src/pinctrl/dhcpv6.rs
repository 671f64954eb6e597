//! `put_dhcpv6_opts`: DHCPv6 replies (RFC 3315) as pinctrl's
//! `pinctrl_handle_put_dhcpv6_opts` builds them from the options OVN's
//! `encode_PUT_DHCPV6_OPTS` encodes: SOLICIT → ADVERTISE; REQUEST, CONFIRM, DECLINE and
//! INFORMATION-REQUEST → REPLY. The reply keeps the request's Ethernet and IPv6
//! headers, its transaction id and Client Identifier, and carries the Server
//! Identifier (DUID-LL), an IA_NA with the address (infinite lifetimes, the client's
//! IAID), DNS servers and the domain search list.

use ovnest_logical::actions::GenOption;
use ovnest_logical::expr::Const;

use super::compose;
use super::dhcp::NoReply;
use crate::flow::Layers;
use crate::wire::udp::UdpPacket;

pub mod msg {
    pub const SOLICIT: u8 = 1;
    pub const ADVERTISE: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const REPLY: u8 = 7;
    pub const DECLINE: u8 = 9;
    pub const INFO_REQ: u8 = 11;
}

pub mod opt {
    pub const CLIENT_ID: u16 = 1;
    pub const SERVER_ID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_ADDR: u16 = 5;
    pub const DNS_SERVER: u16 = 23;
    pub const DOMAIN_SEARCH: u16 = 24;
}

/// OVN's `encode_put_dhcpv6_option` for every option of the action, in order.
pub fn encode(options: &[GenOption]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in options {
        let start = out.len();
        out.extend_from_slice(&(o.def.code as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        match o.def.ty.as_str() {
            "ipv6" => {
                for c in &o.value.values {
                    let v = match c {
                        Const::Int(k) => k.value,
                        Const::Str(_) => 0,
                    };
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            "mac" => {
                let v = match o.value.values.first() {
                    Some(Const::Int(k)) => k.value,
                    _ => 0,
                };
                out.extend_from_slice(&compose::mac(v));
            }
            "str" => {
                if let Some(Const::Str(s)) = o.value.values.first() {
                    out.extend_from_slice(s.as_bytes());
                }
            }
            _ => {}
        }
        let len = (out.len() - start - 4) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    out
}

/// What pinctrl reads from a DHCPv6 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub msg_type: u8,
    /// The first IA_NA's IAID (0 without one).
    pub iaid: u32,
    /// The last Client Identifier option, header included.
    pub client_id: &'a [u8],
}

/// Reads a DHCPv6 request from a UDP segment (header included), bounded by the UDP
/// length and the segment. The fuzzing entry point for DHCPv6.
pub fn parse(udp: &[u8]) -> Result<Request<'_>, NoReply> {
    let u = UdpPacket::new_checked(udp).map_err(|_| NoReply("truncated"))?;
    let end = usize::from(u.len()).min(udp.len());
    let payload = udp.get(8..end.max(8)).unwrap_or(&[]);
    let &msg_type = payload.first().ok_or(NoReply("truncated"))?;
    match msg_type {
        msg::SOLICIT | msg::REQUEST | msg::CONFIRM | msg::DECLINE | msg::INFO_REQ => {}
        _ => return Err(NoReply("bad_msg_type")),
    }
    let mut iaid = 0;
    let mut client_id = None;
    let mut o = 4;
    while o + 4 <= payload.len() {
        let code = u16::from_be_bytes([payload[o], payload[o + 1]]);
        let len = usize::from(u16::from_be_bytes([payload[o + 2], payload[o + 3]]));
        let whole = payload.get(o..o + 4 + len);
        match code {
            opt::IA_NA => {
                if let Some(x) = payload.get(o + 4..o + 8) {
                    iaid = u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
                }
            }
            opt::CLIENT_ID => client_id = Some(whole.ok_or(NoReply("truncated"))?),
            _ => {}
        }
        o += 4 + len;
    }
    let client_id = client_id.ok_or(NoReply("no_client_id"))?;
    if iaid == 0 && msg_type != msg::INFO_REQ {
        return Err(NoReply("no_ia_na"));
    }
    Ok(Request {
        msg_type,
        iaid,
        client_id,
    })
}

/// pinctrl's `compose_out_dhcpv6_opts`: the reply's options from the encoded ones.
fn compose_opts(userdata: &[u8], iaid: u32) -> Result<Vec<u8>, NoReply> {
    let mut out = Vec::new();
    let mut o = 0;
    while o < userdata.len() {
        let h = userdata.get(o..o + 4).ok_or(NoReply("bad_userdata"))?;
        let code = u16::from_be_bytes([h[0], h[1]]);
        let size = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let data = userdata
            .get(o + 4..o + 4 + size)
            .ok_or(NoReply("bad_userdata"))?;
        o += 4 + size;
        match code {
            opt::SERVER_ID => {
                // RFC 3315 §9.4: DUID-LL, hardware type Ethernet.
                out.extend_from_slice(&opt::SERVER_ID.to_be_bytes());
                out.extend_from_slice(&((size + 4) as u16).to_be_bytes());
                out.extend_from_slice(&[0, 3, 0, 1]);
                let mut m = [0u8; 6];
                let n = data.len().min(6);
                m[..n].copy_from_slice(&data[..n]);
                out.extend_from_slice(&m);
            }
            opt::IA_ADDR => {
                if size != 16 {
                    return Err(NoReply("bad_userdata"));
                }
                if iaid == 0 {
                    continue;
                }
                // RFC 3315 §22.4-22.6: IA_NA (IAID, T1, T2) around one IA Address.
                out.extend_from_slice(&opt::IA_NA.to_be_bytes());
                out.extend_from_slice(&(12u16 + 28).to_be_bytes());
                out.extend_from_slice(&iaid.to_be_bytes());
                out.extend_from_slice(&[0xff; 8]);
                out.extend_from_slice(&opt::IA_ADDR.to_be_bytes());
                out.extend_from_slice(&((size + 8) as u16).to_be_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(&[0xff; 8]);
            }
            opt::DNS_SERVER => {
                out.extend_from_slice(&opt::DNS_SERVER.to_be_bytes());
                out.extend_from_slice(&(size as u16).to_be_bytes());
                out.extend_from_slice(data);
            }
            opt::DOMAIN_SEARCH => {
                out.extend_from_slice(&opt::DOMAIN_SEARCH.to_be_bytes());
                out.extend_from_slice(&((size + 2) as u16).to_be_bytes());
                out.push(size as u8);
                out.extend_from_slice(data);
                out.push(0);
            }
            _ => return Err(NoReply("bad_userdata")),
        }
    }
    Ok(out)
}

/// Builds the reply to the DHCPv6 request in `frame` with the action's options.
pub fn reply(
    frame: &[u8],
    layers: Layers,
    options: &[GenOption],
) -> Result<(Vec<u8>, &'static str), NoReply> {
    let userdata = encode(options);
    if userdata.is_empty() {
        return Err(NoReply("no_options"));
    }
    let l4 = layers.l4.ok_or(NoReply("truncated"))?;
    let segment = frame.get(l4..).ok_or(NoReply("truncated"))?;
    let plen = frame
        .get(layers.l3 + 4..layers.l3 + 6)
        .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
        .ok_or(NoReply("truncated"))?;
    // The segment ends with the IPv6 payload (Ethernet padding excluded).
    let seg_end = (layers.l3 + 40 + plen)
        .saturating_sub(l4)
        .min(segment.len());
    let req = parse(&segment[..seg_end])?;
    let (out_type, outcome) = match req.msg_type {
        msg::SOLICIT => (msg::ADVERTISE, "advertise"),
        _ => (msg::REPLY, "reply"),
    };
    let opts = compose_opts(&userdata, req.iaid)?;
    let l4_size = 8 + 4 + req.client_id.len() + opts.len();
    let mut out = Vec::with_capacity(l4 + l4_size);
    out.extend_from_slice(&frame[..l4 + 8]);
    out.push(out_type);
    out.extend_from_slice(&segment[9..12]);
    out.extend_from_slice(req.client_id);
    out.extend_from_slice(&opts);
    let len = (l4_size as u16).to_be_bytes();
    out[l4 + 4..l4 + 6].copy_from_slice(&len);
    out[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    out[layers.l3 + 4..layers.l3 + 6].copy_from_slice(&len);
    let mut c = compose::csum6(&out, layers.l3, 17, &out[l4..]);
    if c == 0 {
        c = 0xffff;
    }
    out[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    Ok((out, outcome))
}
